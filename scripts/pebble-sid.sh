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
if ! curl -fsS --retry 3 -m 300 -o "$tmp/pebble.deb" "$url"; then
  # sid's pool keeps only current versions: once the pinned one is superseded, take sid's pebble of today, its
  # hash read from the archive's signed index (InRelease checked with gpgv against debian-archive-keyring, as apt
  # does), so the package is still verified end to end; CI says which version it took
  echo "[pebble-sid] $url is gone from the archive; taking sid's current pebble through the signed index" >&2
  keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  [ -r "$keyring" ] || { echo "[pebble-sid] FAILED: $keyring missing (package debian-archive-keyring)" >&2; exit 1; }
  curl -fsS --retry 3 -m 120 -o "$tmp/InRelease" "$MIRROR/dists/sid/InRelease" || { echo "[pebble-sid] FAILED: cannot fetch sid's InRelease" >&2; exit 1; }
  gpgv --keyring "$keyring" --output "$tmp/Release" "$tmp/InRelease" 2>/dev/null || { echo "[pebble-sid] FAILED: sid's InRelease signature does not verify" >&2; exit 1; }
  index_sha="$(awk '/^SHA256:/{s=1;next} /^[^ ]/{s=0} s && $3=="main/binary-amd64/Packages.xz"{print $1}' "$tmp/Release")"
  curl -fsS --retry 3 -m 300 -o "$tmp/Packages.xz" "$MIRROR/dists/sid/main/binary-amd64/Packages.xz" || { echo "[pebble-sid] FAILED: cannot fetch sid's Packages.xz" >&2; exit 1; }
  [ -n "$index_sha" ] && [ "$(sha256sum "$tmp/Packages.xz" | cut -d' ' -f1)" = "$index_sha" ] || { echo "[pebble-sid] FAILED: sid's Packages.xz does not match its signed index" >&2; exit 1; }
  stanza="$(xz -dc "$tmp/Packages.xz" | awk 'BEGIN{RS=""} !found && /(^|\n)Package: pebble\n/{print; found=1}')"
  VERSION="$(printf '%s\n' "$stanza" | sed -n 's/^Version: //p')"
  SHA256="$(printf '%s\n' "$stanza" | sed -n 's/^SHA256: //p')"
  file="$(printf '%s\n' "$stanza" | sed -n 's/^Filename: //p')"
  [ -n "$VERSION" ] && [ -n "$SHA256" ] && [ -n "$file" ] || { echo "[pebble-sid] FAILED: no pebble package in sid's index" >&2; exit 1; }
  CACHE="${AUTOSSL_CI_CACHE:-/var/cache/autossl-ci}/pebble/$VERSION"
  BIN="$CACHE/usr/bin/pebble"
  if [ -x "$BIN" ] && [ -x "$CACHE/usr/bin/pebble-challtestsrv" ]; then echo "$BIN"; exit 0; fi
  url="$MIRROR/$file"
  echo "[pebble-sid] fetching $url (sid's pebble $VERSION; the pin was ${PIN%%:*})" >&2
  curl -fsS --retry 3 -m 300 -o "$tmp/pebble.deb" "$url" || { echo "[pebble-sid] FAILED: cannot fetch $url" >&2; exit 1; }
fi
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
