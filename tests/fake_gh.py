"""A stand-in for the `gh release` commands the daily workflow runs, over a local folder.

State lives in $FAKE_GH_STATE: releases.json (tag, draft, latest, asset names in upload order)
and files/<tag>/<asset>. It behaves as gh and GitHub do where it matters here: `create` with
files makes a draft, uploads, then publishes (as gh does); `upload --clobber` deletes an asset and
then uploads its replacement, one asset at a time; drafts are invisible to downloaders. After
every change it appends to served.jsonl what releases/latest/download would serve at that
moment: the latest release's tag, the sha256 of its ai4mat.db and the text of its ai4mat.db.sha256.
tests/test_daily.py serves the same folder over HTTP.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

STATE = Path(os.environ["FAKE_GH_STATE"])


def load() -> list[dict]:
    path = STATE / "releases.json"
    return json.loads(path.read_text()) if path.exists() else []


def latest(releases: list[dict]) -> dict | None:
    """The release latest/download points at: the one last marked latest among published ones."""
    published = [r for r in releases if not r["draft"] and r.get("latest_at") is not None]
    return max(published, key=lambda r: r["latest_at"]) if published else None


def served(releases: list[dict]) -> dict:
    release = latest(releases)
    if release is None:
        return {"tag": None, "db": None, "sha": None}
    folder = STATE / "files" / release["tag"]
    db, sha = folder / "ai4mat.db", folder / "ai4mat.db.sha256"
    return {
        "tag": release["tag"],
        "db": hashlib.sha256(db.read_bytes()).hexdigest() if "ai4mat.db" in release["assets"] else None,
        "sha": sha.read_text() if "ai4mat.db.sha256" in release["assets"] else None,
    }


def save(releases: list[dict]) -> None:
    (STATE / "releases.json").write_text(json.dumps(releases))
    with open(STATE / "served.jsonl", "a") as log:
        log.write(json.dumps(served(releases)) + "\n")


def find(releases: list[dict], tag: str) -> dict | None:
    return next((r for r in releases if r["tag"] == tag), None)


def mark_latest(releases: list[dict], release: dict) -> None:
    release["latest_at"] = 1 + max((r.get("latest_at") or 0) for r in releases)


def upload(releases: list[dict], release: dict, files: list[str], clobber: bool) -> None:
    folder = STATE / "files" / release["tag"]
    folder.mkdir(parents=True, exist_ok=True)
    for file in files:
        name = Path(file).name
        if name in release["assets"]:
            if not clobber:
                sys.exit(f"asset under the same name already exists: [{name}]")
            release["assets"].remove(name)  # GitHub: delete, then upload the new one
            (folder / name).unlink()
            save(releases)
        shutil.copyfile(file, folder / name)
        release["assets"].append(name)
        save(releases)


def main(argv: list[str]) -> int:
    STATE.mkdir(parents=True, exist_ok=True)
    with open(STATE / "calls.log", "a") as log:
        log.write(" ".join(argv) + "\n")
    if argv[:1] != ["release"] or len(argv) < 3:
        sys.exit(f"fake gh: unsupported command {argv}")
    command, tag, rest = argv[1], argv[2], argv[3:]
    releases = load()
    release = find(releases, tag)
    flags = [a for a in rest if a.startswith("--")]
    values = {"--title", "--notes"}
    files, skip = [], False
    for arg in rest:
        if skip:
            skip = False
        elif arg in values:
            skip = True
        elif not arg.startswith("--"):
            files.append(arg)
    if command == "view":
        if release is None:
            print("release not found", file=sys.stderr)
            return 1
        print(json.dumps(release))
        return 0
    if command == "create":
        if release is not None:
            sys.exit(f"a release with the same tag name already exists: {tag}")
        release = {"tag": tag, "draft": True, "assets": [], "latest_at": None}
        releases.append(release)
        save(releases)
        upload(releases, release, files, clobber=False)
        if "--draft" not in flags:
            release["draft"] = False
            if "--latest=false" not in flags:
                mark_latest(releases, release)
            save(releases)
        return 0
    if release is None:
        sys.exit(f"release not found: {tag}")
    if command == "upload":
        upload(releases, release, files, clobber="--clobber" in flags)
        return 0
    if command == "edit":
        if "--draft=false" in flags:
            release["draft"] = False
        if "--latest" in flags or ("--draft=false" in flags and "--latest=false" not in flags):
            mark_latest(releases, release)
        save(releases)
        return 0
    sys.exit(f"fake gh: unsupported command {argv}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
