#!/usr/bin/env bash
# Builds the image the docker-backend tests run tasks in, `airlock-test/debian:bookworm`, without
# a registry: debootstrap a minimal Debian (with git and CA certificates) from the apt mirror and
# `docker import` the root filesystem. Invariant: the image carries the hash of RECIPE below as a
# label, so a run is a no-op when the tagged image already has it; the rootfs tarball is cached
# under ${XDG_CACHE_HOME:-$HOME/.cache}/airlock/ by the same hash, so a removed image re-imports
# in seconds instead of the ~2 minutes debootstrap takes. Called by scripts/test.sh; safe to run
# by hand and concurrently (a lock serializes builds).
set -euo pipefail

TAG=airlock-test/debian:bookworm
LABEL=dev.airlock.test-image.recipe

# Everything that decides the image's content, and nothing else (not the mirror, not comments):
# changing any line here rebuilds. Bump `revision` when the build steps below change meaning.
SUITE=bookworm
VARIANT=minbase
INCLUDE=git,ca-certificates
CHANGES=(
  'CMD ["bash"]'
  'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
  'ENV LANG=C.UTF-8'
)
RECIPE="revision=1
suite=$SUITE
variant=$VARIANT
include=$INCLUDE
$(printf 'change=%s\n' "${CHANGES[@]}")"
sha=$(printf '%s' "$RECIPE" | sha256sum | cut -c1-16)

say() { echo "test-image: $*" >&2; }
fail() { say "$*"; exit 1; }

if ! command -v docker >/dev/null 2>&1; then
  fail "the docker CLI is not installed; install docker.io (e.g. sudo apt-get install docker.io) or run npm test as root, which provisions it"
fi
if ! info_err=$(docker info 2>&1 >/dev/null); then
  fail "the Docker Engine does not answer at ${DOCKER_HOST:-unix:///var/run/docker.sock} ($(printf '%s' "$info_err" | tail -n 2 | tr '\n' ' ' | sed 's/ *$//')) — start dockerd (npm test starts it when run as root) or point DOCKER_HOST at a running engine"
fi

current() { docker image inspect --format "{{ index .Config.Labels \"$LABEL\" }}" "$TAG" 2>/dev/null || true; }

if [ "$(current)" = "$sha" ]; then
  say "$TAG is up to date (recipe $sha); nothing to do"
  exit 0
fi

cache_dir="${XDG_CACHE_HOME:-$HOME/.cache}/airlock"
tarball="$cache_dir/test-image-$SUITE-$sha.tar"
mkdir -p "$cache_dir"
# One build at a time per cache: a second caller waits here, then finds the image made.
exec 9>"$cache_dir/test-image.lock"
if ! flock -n 9; then
  say "another test-image.sh is building; waiting for it"
  flock 9
  if [ "$(current)" = "$sha" ]; then
    say "$TAG was built meanwhile (recipe $sha); nothing to do"
    exit 0
  fi
fi

import_tarball() {
  local changes=() c
  for c in "${CHANGES[@]}" "LABEL $LABEL=$sha"; do changes+=(--change "$c"); done
  docker import "${changes[@]}" --message "airlock test image, recipe $sha" "$tarball" "$TAG" >/dev/null
}

started=$SECONDS
if [ -s "$tarball" ]; then
  import_tarball
  say "imported $TAG from the cached rootfs $tarball in $((SECONDS - started)) s (recipe $sha)"
  exit 0
fi

# The apt mirror this machine already uses for the suite (deb822 .sources first, then the
# one-line sources.list format), so the build works wherever apt does.
mirror() {
  local uri
  uri=$(awk -v suite="$SUITE" '
    BEGIN { RS = ""; FS = "\n" }
    {
      uris = ""; ok = 0
      for (i = 1; i <= NF; i++) {
        if ($i ~ /^URIs:/) { uris = $i; sub(/^URIs:[ \t]*/, "", uris) }
        if ($i ~ /^Suites:/) { n = split(substr($i, 8), s, /[ \t]+/); for (j = 1; j <= n; j++) if (s[j] == suite) ok = 1 }
      }
      if (ok && uris != "") { split(uris, u, /[ \t]+/); print u[1]; exit }
    }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  if [ -z "$uri" ] && [ -r /etc/apt/sources.list ]; then
    uri=$(sed -E 's/\[[^]]*\]//' /etc/apt/sources.list | awk -v suite="$SUITE" '$1 == "deb" && $3 == suite { print $2; exit }')
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}

if [ "$(id -u)" != 0 ]; then
  fail "building $TAG needs debootstrap, which must run as root; run this script (or npm test) as root once — later runs reuse the image"
fi
if ! command -v debootstrap >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    say "installing debootstrap"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 apt-get install -y -qq debootstrap >/dev/null
  else
    fail "debootstrap is not installed and apt-get is not available; install debootstrap and run again"
  fi
fi

url=$(mirror)
rootfs=$(mktemp -d "${TMPDIR:-/tmp}/airlock-test-image.XXXXXX")
# --one-file-system: if debootstrap died with /proc or /sys still mounted in the target, never
# descend into them.
trap 'umount -l "$rootfs/proc" "$rootfs/sys" 2>/dev/null || true; rm -rf --one-file-system "$rootfs" "$rootfs.log" "$tarball.partial"' EXIT
say "building $TAG with debootstrap from $url (a minute or two)"
if ! debootstrap --variant="$VARIANT" --include="$INCLUDE" "$SUITE" "$rootfs" "$url" >"$rootfs.log" 2>&1; then
  tail -n 20 "$rootfs.log" >&2
  fail "debootstrap of $SUITE from $url failed (log tail above); check that apt can reach the mirror"
fi
# Downloaded packages and apt's indexes are dead weight in the image.
rm -rf "${rootfs:?}"/var/cache/apt/archives/*.deb "${rootfs:?}"/var/lib/apt/lists/*
tar --numeric-owner -C "$rootfs" -cf "$tarball.partial" .
mv "$tarball.partial" "$tarball"
# Older recipes' tarballs are never used again.
find "$cache_dir" -maxdepth 1 -name "test-image-$SUITE-*.tar" ! -name "${tarball##*/}" -delete
import_tarball
say "built $TAG in $((SECONDS - started)) s (recipe $sha; rootfs cached at $tarball)"
