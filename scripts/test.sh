#!/usr/bin/env bash
# The whole test suite: `npm test`. Checks the commands the tests drive (installing them when run
# as root, as CI is; otherwise saying what to install), builds, type-checks and lints, then runs
# every test with vitest against real components. Services are provisioned here the same way
# (the Docker Engine and the docker tests' image; later PostgreSQL, Chromium) — never skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

# Commands the tests run for real: bash (the shell harness), git (task workspaces), curl (the
# README's tour), docker (the docker backend's tests, with the engine itself: dockerd), ip (a
# private engine's bridge) and openssl (the engine's TLS certificates).
install_or_explain() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test: installing $*" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 apt-get install -y -qq "$@" >/dev/null
  else
    echo "test: the tests need $*; install them (e.g. sudo apt-get install $*) and run npm test again" >&2
    exit 1
  fi
}
missing=()
for cmd in bash git curl docker ip openssl; do
  pkg=$cmd
  [ "$cmd" = docker ] && pkg=docker.io
  [ "$cmd" = ip ] && pkg=iproute2 # the engine-restart test gives its private dockerd a bridge
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then install_or_explain "${missing[@]}"; fi

# The Docker Engine. One that already answers is used as it is (a system service, Docker
# Desktop, a DOCKER_HOST elsewhere); otherwise, as root, start the local dockerd in the
# background, once: a second run finds it answering (or still starting, and waits for it).
engine_answers() { timeout 10 docker info >/dev/null 2>&1; }
# 30 s: a cold dockerd on a small machine answers in 1–5 s; this leaves room for a loaded one.
DOCKERD_WAIT_S=30
if ! engine_answers; then
  if [ -n "${DOCKER_HOST:-}" ] && [ "$DOCKER_HOST" != unix:///var/run/docker.sock ]; then
    echo "test: the Docker Engine at DOCKER_HOST=$DOCKER_HOST does not answer (docker info failed); start it, or unset DOCKER_HOST to use a local dockerd" >&2
    exit 1
  fi
  if [ "$(id -u)" != 0 ]; then
    echo "test: the Docker Engine does not answer at /var/run/docker.sock; start it (e.g. sudo systemctl start docker, or sudo dockerd &), and make sure your user may use it (the docker group), then run npm test again" >&2
    exit 1
  fi
  # dockerd lives in /usr/sbin, which a root shell's PATH may lack.
  PATH="$PATH:/usr/sbin:/sbin"
  command -v dockerd >/dev/null 2>&1 || install_or_explain docker.io
  dockerd_log="${TMPDIR:-/tmp}/airlock-dockerd.log"
  pid=$(cat /var/run/docker.pid 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    echo "test: dockerd (pid $pid) is running but not answering yet; waiting up to ${DOCKERD_WAIT_S} s" >&2
  else
    echo "test: starting dockerd in the background (log: $dockerd_log)" >&2
    # setsid + nohup: the engine outlives this script, so later runs reuse it.
    setsid nohup dockerd >"$dockerd_log" 2>&1 </dev/null &
  fi
  deadline=$((SECONDS + DOCKERD_WAIT_S))
  until engine_answers; do
    if [ $SECONDS -ge $deadline ]; then
      echo "test: dockerd did not answer within ${DOCKERD_WAIT_S} s; the end of $dockerd_log:" >&2
      tail -n 20 "$dockerd_log" >&2 2>/dev/null || true
      exit 1
    fi
    sleep 0.5
  done
fi
# The image the docker backend's tests run tasks in (a no-op when it is up to date).
bash scripts/test-image.sh

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
