#!/usr/bin/env bash
# Release ai4mat.db and ai4mat.db.sha256 (written by scripts/daily.sh) as a new GitHub release and
# make it "latest" in one step. The assets go into a draft, which nobody can download; only once
# both are uploaded is the draft published and marked latest. A second run on the same day gets
# its own release (data-YYYY-MM-DD-HHMMSS) rather than replacing assets one at a time, which let
# releases/latest/download answer 404, or a file and a checksum that disagree, in between.
#
#   AI4MAT_DB   the database file (default ai4mat.db); its checksum file is beside it.
#   GH_TOKEN    authenticates gh (the workflow's token, with contents: write).
set -euo pipefail

db="${AI4MAT_DB:-ai4mat.db}"
log() { echo "release: $*" >&2; }

# Never release a pair that disagrees.
( cd "$(dirname "$db")" && sha256sum --check --quiet "$(basename "$db").sha256" ) ||
  { log "$db does not match $db.sha256; not releasing"; exit 1; }

day="$(date -u +%Y-%m-%d)"
tag="data-$day"
if gh release view "$tag" >/dev/null 2>&1; then
  tag="data-$day-$(date -u +%H%M%S)"
fi
gh release create "$tag" --draft --title "ai4mat.db $day" \
  --notes "The dataset after the run of $day. Check it with: sha256sum -c ai4mat.db.sha256"
gh release upload "$tag" "$db" "$db.sha256" ||
  { log "uploading to the draft $tag failed; latest is unchanged (delete the draft by hand)"; exit 1; }
gh release edit "$tag" --draft=false --latest
log "$tag published as latest"
