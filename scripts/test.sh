#!/usr/bin/env bash
# The whole test suite: `npm test`. Checks the commands the tests drive (installing them when run
# as root, as CI is; otherwise saying what to install), builds, type-checks and lints, then runs
# every test with vitest against real components. Later capabilities add their services here
# (Docker Engine, PostgreSQL, Chromium), provisioned the same way — never skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

# Commands the tests run for real: bash (the shell harness), git (task workspaces), curl (the
# README's tour).
missing=()
for cmd in bash git curl; do command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test: installing ${missing[*]}" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "test: the tests need ${missing[*]}; install them (e.g. sudo apt-get install ${missing[*]}) and run npm test again" >&2
    exit 1
  fi
fi

npm run build --silent
# Types and lint first: the plane-boundary rules (server ⟂ worker, agent → protocol/lib only)
# are part of what the suite proves.
npm run lint --silent

report=$(mktemp)
trap 'rm -f "$report"' EXIT
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@" || status=$?
# One plain closing line, whatever the reporter printed above it.
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
' "$report" || true
exit "$status"
