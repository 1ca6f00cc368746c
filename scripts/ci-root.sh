#!/usr/bin/env bash
# Run autossl's demo and tests in a Debian root built with debootstrap (trixie = Debian 13, sid), as root.
#
#   scripts/ci-root.sh SUITE [--build-only] [TEST_FILE...]
#   scripts/ci-root.sh SUITE --exec CMD...   (a command in the root's last copy of the checkout, by hand)
#
# The root is built once from Debian's archive with the packages the tests need and cached under
# $AUTOSSL_CI_ROOTS (default /var/cache/autossl-ci/roots); a root whose package list changed is rebuilt.
# Each run enters the root with chroot inside its own mount namespace; the demo and the tests also get their own
# network namespace (only lo), so nginx, pebble and challtestsrv bind nothing of the machine. The checkout is
# copied into the root (node_modules and dist left out), `npm ci` installs the dependencies with the root's Node
# (better-sqlite3 is compiled there), then `npm run demo` and the tests run. Without TEST_FILE the whole suite runs.
# Exit status: non-zero when the root cannot be built (no archive is a failure, not a skip), the demo or a test fails.
set -euo pipefail

SUITE="${1:-}"
case "$SUITE" in
  trixie | sid | bookworm) ;;
  *) echo "usage: $0 trixie|sid|bookworm [--build-only] [TEST_FILE...]" >&2; exit 2 ;;
esac
shift
BUILD_ONLY=0
EXEC=0
if [ "${1:-}" = "--build-only" ]; then BUILD_ONLY=1; shift; fi
if [ "${1:-}" = "--exec" ]; then EXEC=1; shift; fi

cd "$(dirname "$0")/.."
CHECKOUT="$(pwd)"
ROOTS="${AUTOSSL_CI_ROOTS:-/var/cache/autossl-ci/roots}"
MIRROR="${AUTOSSL_CI_MIRROR:-http://deb.debian.org/debian}"
ROOT="$ROOTS/$SUITE"

# What the product and its tests use (as .ci/run installs on the machine), plus Node, npm and a compiler for
# better-sqlite3 (libnode-dev: the headers npm's nodedir=/usr points at).
PACKAGES="nginx certbot python3-certbot-nginx pebble libnginx-mod-http-lua openssl curl procps util-linux bsdutils"
PACKAGES="$PACKAGES iproute2 patch ca-certificates nodejs npm libnode-dev python3 make g++ git"
STAMP="$(echo "$SUITE $PACKAGES" | sha256sum | cut -c1-16)"

log() { echo "[ci-root $SUITE] $*" >&2; }

build_root() {
  if [ -f "$ROOT/.autossl-root" ] && [ "$(cat "$ROOT/.autossl-root")" = "$STAMP" ]; then return 0; fi
  command -v debootstrap >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >&2; }
  local started tmp
  started=$(date +%s)
  # a build that stopped after debootstrap goes on from there
  tmp="$ROOTS/.$SUITE.building"
  mkdir -p "$ROOTS"
  if [ ! -f "$tmp/.debootstrap-done" ]; then
    rm -rf "$tmp"
    log "building root from $MIRROR (debootstrap, then apt-get install)"
    debootstrap --variant=minbase "$SUITE" "$tmp" "$MIRROR" >"$ROOTS/.$SUITE.debootstrap.log" 2>&1 || {
      tail -20 "$ROOTS/.$SUITE.debootstrap.log" >&2
      log "FAILED: debootstrap could not build the root"
      exit 1
    }
    touch "$tmp/.debootstrap-done"
  fi
  # sid's Release file is valid for a week only; an archive mirror a little behind must still do.
  echo 'Acquire::Check-Valid-Until "false";' >"$tmp/etc/apt/apt.conf.d/99autossl-ci"
  # Debian's nginx package would start nginx in the root (on the machine's :80) on install: forbid service starts.
  printf '#!/bin/sh\nexit 101\n' >"$tmp/usr/sbin/policy-rc.d"
  chmod +x "$tmp/usr/sbin/policy-rc.d"
  # shellcheck disable=SC2086
  in_root "$tmp" host sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $PACKAGES && apt-get clean" \
    >"$ROOTS/.$SUITE.apt.log" 2>&1 || {
    tail -20 "$ROOTS/.$SUITE.apt.log" >&2
    log "FAILED: the packages could not be installed in the root"
    exit 1
  }
  echo "$STAMP" >"$tmp/.autossl-root"
  rm -rf "$ROOT"
  mv "$tmp" "$ROOT"
  log "root built in $(($(date +%s) - started)) s"
}

# in_root DIR host|private CMD...: chroot into DIR inside a new mount namespace (proc, dev, sys, tmp of its own);
# "private" also gives it a new network namespace with only lo up.
in_root() {
  local dir="$1" net="$2"
  shift 2
  local unshare_net=""
  [ "$net" = private ] && unshare_net="--net"
  # The machine's trusted CAs and npm settings: npm inside the root reaches the registry as the machine does.
  mkdir -p "$dir/usr/local/share/ca-certificates" "$dir/root"
  cp /usr/local/share/ca-certificates/*.crt "$dir/usr/local/share/ca-certificates/" 2>/dev/null || true
  [ -f /root/.npmrc ] && cp /root/.npmrc "$dir/root/.npmrc"
  [ -f /etc/npmrc ] && cp /etc/npmrc "$dir/etc/npmrc"
  cp /etc/resolv.conf "$dir/etc/resolv.conf" 2>/dev/null || true
  unshare --mount --propagation private $unshare_net -- /bin/sh -c '
    set -e
    dir="$1"; net="$2"; shift 2
    mount -t proc proc "$dir/proc"
    mount --rbind /dev "$dir/dev"
    mount -t sysfs sysfs "$dir/sys" 2>/dev/null || mount --rbind /sys "$dir/sys"
    mount -t tmpfs tmpfs "$dir/tmp"
    mount -t tmpfs tmpfs "$dir/run"
    mkdir -p "$dir/run/lock"
    if [ "$net" = private ]; then ip link set lo up; fi
    exec chroot "$dir" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      LANG=C.UTF-8 CI="${CI:-}" NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt "$@"
  ' sh "$dir" "$net" "$@"
}

build_root
if [ "$BUILD_ONLY" = 1 ]; then exit 0; fi
if [ "$EXEC" = 1 ]; then
  # shellcheck disable=SC2016
  exec_cmd='cd /work/autossl && "$@"'
  in_root "$ROOT" private sh -c "$exec_cmd" sh "$@"
  exit $?
fi

log "copying the checkout into the root"
# node_modules of the last run is kept while package-lock.json is the same (npm ci compiles better-sqlite3: minutes)
lock="$(sha256sum "$CHECKOUT/package-lock.json" | cut -c1-16)"
cache="$ROOT/work/node_modules.$lock"
rm -rf "$ROOT"/work/node_modules.*
if [ -d "$ROOT/work/autossl/node_modules" ] && [ -f "$ROOT/work/autossl/.npm-ci-done" ] && [ "$(cat "$ROOT/work/autossl/.npm-ci-done")" = "$lock" ] && [ -z "${AUTOSSL_CI_FRESH_NPM:-}" ]; then
  mv "$ROOT/work/autossl/node_modules" "$cache"
fi
rm -rf "$ROOT/work/autossl"
mkdir -p "$ROOT/work/autossl"
tar -C "$CHECKOUT" --exclude=./node_modules --exclude=./dist --exclude=./.git -cf - . | tar -C "$ROOT/work/autossl" -xf -
# The nginx corpus the editor tests read, when the machine has it.
if [ -n "${AUTOSSL_CORPUS:-}" ] && [ -d "$AUTOSSL_CORPUS" ]; then
  rm -rf "$ROOT/work/nginx-corpus"
  cp -r "$AUTOSSL_CORPUS" "$ROOT/work/nginx-corpus"
fi

in_root "$ROOT" host sh -c 'update-ca-certificates >/dev/null 2>&1 || true'
started=$(date +%s)
if [ -d "$cache" ]; then
  mv "$cache" "$ROOT/work/autossl/node_modules"
  log "node_modules kept from the last run (same package-lock.json; AUTOSSL_CI_FRESH_NPM=1 runs npm ci)"
else
  log "npm ci"
  in_root "$ROOT" host sh -c 'cd /work/autossl && npm ci --no-audit --no-fund' >&2
  log "npm ci took $(($(date +%s) - started)) s"
fi
echo "$lock" >"$ROOT/work/autossl/.npm-ci-done"

versions="$(in_root "$ROOT" host sh -c 'echo "certbot $(certbot --version 2>&1 | cut -d" " -f2), nginx $(nginx -v 2>&1 | cut -d/ -f2), Node $(node -v | tr -d v)"')"
log "$SUITE: $versions"

corpus_env=""
[ -d "$ROOT/work/nginx-corpus" ] && corpus_env="AUTOSSL_CORPUS=/work/nginx-corpus"
status=0
started=$(date +%s)
log "npm run demo"
if in_root "$ROOT" private sh -c 'cd /work/autossl && npm run demo' >&2; then demo="demo ok"; else demo="demo FAILED"; status=1; fi
log "$demo in $(($(date +%s) - started)) s"

started=$(date +%s)
out="$ROOT/work/vitest-$SUITE.log"
log "vitest ${*:-(whole suite)}"
# shellcheck disable=SC2086
if in_root "$ROOT" private sh -c "cd /work/autossl && env $corpus_env npx vitest run \$*" sh "$@" 2>&1 | tee "$out" >&2; then :; fi
# tee hides vitest's exit code: judge by its summary line.
summary="$(sed 's/\x1b\[[0-9;]*m//g' "$out" | grep -E '^ +Tests +' | tail -1 | sed 's/^ *Tests *//')"
passed="$(echo "$summary" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+' || echo 0)"
failed="$(echo "$summary" | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+' || echo 0)"
[ -z "$summary" ] && status=1
[ "${failed:-0}" != 0 ] && status=1
log "tests took $(($(date +%s) - started)) s"
echo "$SUITE ($versions): $demo; ${passed:-0} passed, ${failed:-0} failed"
exit $status
