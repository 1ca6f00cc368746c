#!/usr/bin/env bash
# Fetches Debian sid's pebble package (2.10: ACME Renewal Information, profiles) from Debian's archive, unpacks it
# (dpkg-deb -x, nothing installed) into a cache, and prints the path of its pebble binary; pebble-challtestsrv is
# beside it. The Go binaries run on Debian 12, whose own pebble (2.4) has neither renewalInfo nor profiles.
#
#   AUTOSSL_PEBBLE="$(scripts/pebble-sid.sh)"     (the test rig runs that pebble; .ci/run does this)
#
# The version is pinned with its SHA-256 (the package is fetched over plain HTTP, as apt does, but without apt's
# signed index: the hash stands in for it). AUTOSSL_PEBBLE_DEB=VERSION:SHA256 picks another; AUTOSSL_CI_MIRROR
# another archive; the cache is $AUTOSSL_CI_CACHE (default /var/cache/autossl-ci)/pebble/VERSION.
set -euo pipefail
PIN="${AUTOSSL_PEBBLE_DEB:-2.10.0+ds1-2:b9a3a3920143f1a6fc568dfa88247be22cafa96c845fe62938c08982a15df315}"
VERSION="${PIN%%:*}"
SHA256="${PIN#*:}"
MIRROR="${AUTOSSL_CI_MIRROR:-http://deb.debian.org/debian}"
CACHE="${AUTOSSL_CI_CACHE:-/var/cache/autossl-ci}/pebble/$VERSION"
BIN="$CACHE/usr/bin/pebble"
if [ -x "$BIN" ] && [ -x "$CACHE/usr/bin/pebble-challtestsrv" ]; then echo "$BIN"; exit 0; fi

mkdir -p "$(dirname "$CACHE")"
tmp="$(mktemp -d "$(dirname "$CACHE")/.fetch.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
url="$MIRROR/pool/main/p/pebble/pebble_${VERSION}_amd64.deb"
echo "[pebble-sid] fetching $url" >&2
curl -fsS --retry 3 -m 300 -o "$tmp/pebble.deb" "$url" || { echo "[pebble-sid] FAILED: cannot fetch $url" >&2; exit 1; }
got="$(sha256sum "$tmp/pebble.deb" | cut -d' ' -f1)"
if [ "$got" != "$SHA256" ]; then
  echo "[pebble-sid] FAILED: $url has SHA-256 $got, expected $SHA256" >&2
  exit 1
fi
dpkg-deb -x "$tmp/pebble.deb" "$tmp/root"
"$tmp/root/usr/bin/pebble" -version >&2
# the cache appears whole or not at all (two CI runs at once: the second rename loses and keeps the first)
rm -rf "$CACHE.new" && mv "$tmp/root" "$CACHE.new" && { mv -T "$CACHE.new" "$CACHE" 2>/dev/null || rm -rf "$CACHE.new"; }
echo "$BIN"
