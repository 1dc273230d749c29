#!/usr/bin/env bash
# The daily job: fetch the previous database, harvest, embed papers for search, rewrite the
# README section, smoke-check the site, and write the file's checksum. Runs in the current
# directory (config.json, README.md and ai4mat.db live there); the site files are the ones
# `ai4mat serve` serves (harvest/site_files.py: this repository's from a checkout, else those
# shipped in the package).
#
#   AI4MAT_PREVIOUS_DB_URL  where the previous ai4mat.db is published (e.g. the latest GitHub
#                           release asset); its checksum is read from the same release
#                           (<url>.sha256, after resolving a "latest" redirect). Unset: keep the
#                           local file, or start empty. The download must match the checksum and
#                           pass PRAGMA integrity_check; any failure, HTTP 404 included, stops the
#                           job, so a missing asset or a network hiccup never publishes a dataset
#                           that forgot its past.
#   AI4MAT_START_EMPTY=1    the very first run: when no previous database is published (HTTP 404),
#                           start an empty one instead of stopping. Never the default.
#   ARXIV_API_URL           the arXiv API endpoint (tests point it at a local fake).
#   AI4MAT_DB               the database file (default ai4mat.db).
#   AI4MAT_DOWNLOAD_RETRIES retries of that download on a transient error (default 3).
#   AI4MAT_EMBED_MINUTES    the budget for embedding papers for search (default 20); the rest waits.
#   AI4MAT_RELATE_WEEKDAY   the day of the week (UTC, 1 = Monday ... 7 = Sunday; default 7) on which
#                           every paper's related list is recomputed in full; 0: never.
#   PYTHON                  the interpreter with ai4mat installed (default python3): the integrity
#                           check, and where the site files are.
#   GITHUB_OUTPUT           (set by GitHub Actions) receives harvest_failed=true|false, so the
#                           workflow can publish the record of a failure and still end red.
set -euo pipefail

db="${AI4MAT_DB:-ai4mat.db}"
"${PYTHON:-python3}" -c "import harvest" 2>/dev/null || { echo "daily: ${PYTHON:-python3} cannot import ai4mat's harvest package (set PYTHON)" >&2; exit 1; }

log() { echo "daily: $*" >&2; }

stop() { rm -f "$db.download" "$db.download.sha256"; log "$*"; exit 1; }

relate_weekday="${AI4MAT_RELATE_WEEKDAY:-7}"
case "$relate_weekday" in
  [0-7]) ;;
  *) stop "AI4MAT_RELATE_WEEKDAY must be a day of the week from 1 (Monday) to 7 (Sunday), or 0 for never; got '$relate_weekday'" ;;
esac

# download URL FILE: prints the HTTP status; fails only when no answer came at all.
download() {
  curl --silent --show-error --location --retry "${AI4MAT_DOWNLOAD_RETRIES:-3}" --retry-delay 5 \
    --output "$2" --write-out '%{http_code}' "$1"
}

if [ -n "${AI4MAT_PREVIOUS_DB_URL:-}" ]; then
  log "fetching the previous database from $AI4MAT_PREVIOUS_DB_URL"
  # Pin "latest" to one release first (one redirect hop), so the file and its checksum come from
  # the same release even if a new one is published between the two downloads.
  answer="$(curl --silent --show-error --head --retry "${AI4MAT_DOWNLOAD_RETRIES:-3}" --retry-delay 5 \
    --output /dev/null --write-out '%{http_code} %{redirect_url}' "$AI4MAT_PREVIOUS_DB_URL")" ||
    stop "could not download the previous database; stopping rather than starting over"
  db_url="$AI4MAT_PREVIOUS_DB_URL"
  case "$answer" in
    3??\ */"$(basename "$AI4MAT_PREVIOUS_DB_URL")") db_url="${answer#* }" ;;
  esac
  status="$(download "$db_url" "$db.download")" ||
    stop "could not download the previous database; stopping rather than starting over"
  case "$status" in
    200)
      sha_status="$(download "$db_url.sha256" "$db.download.sha256")" ||
        stop "could not download the previous database's checksum; stopping rather than starting over"
      [ "$sha_status" = 200 ] ||
        stop "no checksum published beside the previous database ($db_url.sha256: HTTP $sha_status); stopping rather than using an unchecked file"
      expected="$(head -c 200 "$db.download.sha256" | awk 'NR == 1 { print $1 }')"
      actual="$(sha256sum "$db.download" | awk '{ print $1 }')"
      [ "$expected" = "$actual" ] ||
        stop "the previous database does not match its published checksum (sha256 $actual, published ${expected:-nothing}); stopping rather than building on a damaged file"
      check="$("${PYTHON:-python3}" -c '
import sqlite3, sys
try:
    conn = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
    print(" ".join(row[0] for row in conn.execute("PRAGMA integrity_check")))
except sqlite3.DatabaseError as error:
    print(error)
' "$db.download" 2>&1)" || true
      [ "$check" = ok ] ||
        stop "the previous database fails PRAGMA integrity_check ($(echo "$check" | head -c 200)); stopping rather than building on a damaged file"
      rm -f "$db.download.sha256"
      mv "$db.download" "$db"
      log "previous database verified: sha256 $actual, integrity ok"
      ;;
    404)
      if [ "${AI4MAT_START_EMPTY:-}" = 1 ]; then
        rm -f "$db.download" "$db"
        log "no previous database published (HTTP 404) and AI4MAT_START_EMPTY=1: starting an empty one"
      else
        stop "no previous database at $db_url (HTTP 404); stopping rather than starting over. On the very first run, set AI4MAT_START_EMPTY=1 (workflow input start_empty)"
      fi
      ;;
    *)
      stop "downloading the previous database failed with HTTP $status; stopping rather than starting over"
      ;;
  esac
elif [ -e "$db" ]; then
  log "AI4MAT_PREVIOUS_DB_URL is unset: adding to the local $db"
else
  log "AI4MAT_PREVIOUS_DB_URL is unset and there is no $db: starting an empty one"
fi

# Papers tagged by an older tag vocabulary (harvest/data/vocabulary.json changed) are re-tagged
# once, in one transaction, before today's papers are added; a file already current is untouched.
# A failure leaves the tags as they were and does not hold back today's harvest.
if ! ai4mat enrich --db "$db" --if-stale >&2; then
  log "re-tagging the papers with the current vocabulary failed (above); harvesting with the tags as they are"
  echo "::warning title=re-tagging failed::papers keep their older tags until a run re-tags them"
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

# Today's papers (and, within the budget, older ones) get their all-MiniLM-L6-v2 vectors for
# search and related papers (their lists are recomputed with them): about 30 papers a second on
# 2 cores. Papers without one still rank by words, WordLlama and tags; a failure (the model not
# installed) only warns.
if ! ai4mat embed --db "$db" --minutes "${AI4MAT_EMBED_MINUTES:-20}" >&2; then
  log "embedding papers for search failed (above); papers not embedded rank without it"
  echo "::warning title=embedding failed::papers without an all-MiniLM-L6-v2 vector rank without it"
fi

# Each day's papers enter the related lists incrementally, and a list never learns which paper
# should replace one of its ten whose score fell: once a week every list is recomputed exactly
# (`ai4mat relate`: 15.6 min at a million papers, benchmarks/RESULTS.md), in one transaction. A
# failure leaves the lists as they were and only warns.
if [ "$(date -u +%u)" = "$relate_weekday" ]; then
  log "recomputing every paper's related list (weekly, on day $relate_weekday)"
  if ! ai4mat relate --db "$db" >&2; then
    log "recomputing the related papers failed (above); the lists stay as the daily updates left them"
    echo "::warning title=related recompute failed::related lists keep their daily updates until the next weekly recompute"
  fi
fi

ai4mat readme --db "$db"

# Loading the site also loads the metadata (rendered for config.json, as published) and the
# plugins; the feeds are the most fragile pages.
"${PYTHON:-python3}" -m harvest.smoke --db "$db" --config config.json || stop "smoke check failed (above)"
log "smoke check passed"

# Live serving (`ai4mat serve`) leaves a file in WAL mode, whose committed pages may sit in its
# -wal file and which cannot be opened read-only without its -shm: release rollback mode only.
"${PYTHON:-python3}" -c '
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
mode = conn.execute("PRAGMA journal_mode = DELETE").fetchone()[0]
conn.close()
sys.exit(mode != "delete")
' "$db" || stop "could not switch $db to rollback journal mode for the release (is it being served live? stop ai4mat serve first)"

( cd "$(dirname "$db")" && sha256sum "$(basename "$db")" > "$(basename "$db").sha256" )
log "$(cat "$db.sha256")"
