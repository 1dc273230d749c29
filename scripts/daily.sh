#!/usr/bin/env bash
# The daily job: fetch the previous database, harvest, rewrite the README section, smoke-check
# the site, and write the file's checksum. Runs in the current directory (config.json,
# README.md and ai4mat.db live there); the site files come from this repository.
#
#   AI4MAT_PREVIOUS_DB_URL  where the previous ai4mat.db is published (e.g. the latest GitHub
#                           release asset). Unset: keep the local file, or start empty.
#                           HTTP 404: the first run, start empty. Any other failure stops the job,
#                           so a network hiccup never publishes a dataset that forgot its past.
#   ARXIV_API_URL           the arXiv API endpoint (tests point it at a local fake).
#   AI4MAT_DB               the database file (default ai4mat.db).
#   AI4MAT_DOWNLOAD_RETRIES retries of that download on a transient error (default 3).
#   GITHUB_OUTPUT           (set by GitHub Actions) receives harvest_failed=true|false, so the
#                           workflow can publish the record of a failure and still end red.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
db="${AI4MAT_DB:-ai4mat.db}"
metadata="$repo/metadata.yml"
plugins="$repo/plugins"

log() { echo "daily: $*" >&2; }

if [ -n "${AI4MAT_PREVIOUS_DB_URL:-}" ]; then
  log "fetching the previous database from $AI4MAT_PREVIOUS_DB_URL"
  status="$(curl --silent --show-error --location --retry "${AI4MAT_DOWNLOAD_RETRIES:-3}" --retry-delay 5 \
    --output "$db.download" --write-out '%{http_code}' "$AI4MAT_PREVIOUS_DB_URL")" || {
    rm -f "$db.download"
    log "could not download the previous database; stopping rather than starting over"
    exit 1
  }
  case "$status" in
    200)
      mv "$db.download" "$db"
      ;;
    404)
      rm -f "$db.download" "$db"
      log "no previous database published yet (HTTP 404): starting an empty one"
      ;;
    *)
      rm -f "$db.download"
      log "downloading the previous database failed with HTTP $status; stopping rather than starting over"
      exit 1
      ;;
  esac
elif [ -e "$db" ]; then
  log "AI4MAT_PREVIOUS_DB_URL is unset: adding to the local $db"
else
  log "AI4MAT_PREVIOUS_DB_URL is unset and there is no $db: starting an empty one"
fi

# A failed harvest is recorded in the database (the runs table) and published like any other
# run; the next run catches up, since every run scans the query's whole result set.
harvest_failed=false
if ! ai4mat harvest --db "$db"; then
  harvest_failed=true
  log "the harvest failed (recorded in the runs table); publishing the database as it is"
  echo "::warning title=harvest failed::see the runs table of the published dataset"
fi
if [ -n "${GITHUB_OUTPUT:-}" ]; then
  echo "harvest_failed=$harvest_failed" >> "$GITHUB_OUTPUT"
fi

ai4mat readme --db "$db"

# Loading the site also loads metadata.yml and the plugins; the feed is the most fragile page.
for path in /ai4mat/new_today.json /ai4mat/feed.atom; do
  datasette "$db" --metadata "$metadata" --plugins-dir "$plugins" --template-dir "$repo/templates" --get "$path" >/dev/null
done
log "smoke check passed"

( cd "$(dirname "$db")" && sha256sum "$(basename "$db")" > "$(basename "$db").sha256" )
log "$(cat "$db.sha256")"
