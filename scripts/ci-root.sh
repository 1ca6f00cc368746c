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
ARGS=("$@")
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
# shellcheck source=scripts/ci-lib.sh
. scripts/ci-lib.sh
ROOTS="${AUTOSSL_CI_ROOTS:-/var/cache/autossl-ci/roots}"
MIRROR="${AUTOSSL_CI_MIRROR:-http://deb.debian.org/debian}"
ROOT="$ROOTS/$SUITE"

# One run per root at a time: ci-matrix.sh starts `--build-only` early and the run itself later (it waits here for
# the build instead of building the same root twice), and two CI runs on one machine share the cache. flock -o: the
# processes the suite starts do not inherit the lock.
if [ -z "${AUTOSSL_CI_ROOT_LOCKED:-}" ]; then
  mkdir -p "$ROOTS"
  AUTOSSL_CI_ROOT_LOCKED=1 exec flock -o "$ROOTS/.$SUITE.lock" "$CHECKOUT/scripts/ci-root.sh" "${ARGS[@]}"
fi

# What the product and its tests use (as .ci/run installs on the machine), plus Node, npm and a compiler for
# better-sqlite3 (libnode-dev: the headers npm's nodedir=/usr points at).
PACKAGES="nginx certbot python3-certbot-nginx pebble libnginx-mod-http-lua openssl curl procps util-linux bsdutils"
PACKAGES="$PACKAGES iproute2 patch ca-certificates nodejs npm libnode-dev python3 make g++ git"
# postgresql: the PostgreSQL store's tests start private clusters (initdb, as the postgres user the package makes)
PACKAGES="$PACKAGES postgresql"
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
  if [ ! -f "$tmp/.debootstrap-done" ] && [ -f "$ROOT/.autossl-root" ]; then
    # a root built for another package list: the packages are added to it (apt-get install below), no new debootstrap
    log "the package list changed: adding the packages to the root"
    rm -rf "$tmp"
    mv "$ROOT" "$tmp"
    touch "$tmp/.debootstrap-done"
  fi
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
    # the root a mount point of its own: in the chroot "/" is then a mount, so unshare --propagation and ip netns
    # add (mount --make-rslave /) work there as on the machine (the demo and the mount-namespace tests use them)
    mount --bind "$dir" "$dir"
    mount -t proc proc "$dir/proc"
    mount --rbind /dev "$dir/dev"
    mount -t sysfs sysfs "$dir/sys" 2>/dev/null || mount --rbind /sys "$dir/sys"
    mount -t tmpfs tmpfs "$dir/tmp"
    mount -t tmpfs tmpfs "$dir/run"
    mkdir -p "$dir/run/lock"
    # the machine'"'"'s npm cache: the package test installs the packed tarball offline (no network in the root)
    if [ -d /root/.npm/_cacache ]; then mkdir -p "$dir/root/.npm/_cacache"; mount --bind /root/.npm/_cacache "$dir/root/.npm/_cacache"; fi
    if [ "$net" = private ]; then ip link set lo up; fi
    exec chroot "$dir" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      LANG=C.UTF-8 CI="${CI:-}" NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt AUTOSSL_PEBBLE="${AUTOSSL_ROOT_PEBBLE:-}" "$@"
  ' sh "$dir" "$net" "$@"
}

# build_addon: better-sqlite3 is the one dependency bound to a Node ABI (a V8 addon); the rest of node_modules is
# JavaScript or linux-x64-gnu binaries (rolldown, lightningcss) built for an older glibc than Debian 13's and sid's.
# The machine's binary serves a root whose Node has the machine's ABI (Debian 13's Node 20.19 = 115, like Node 20);
# for another (sid's Node 24 = 137) the locked version's package is fetched from the registry and compiled in the
# root against the root's Node headers (libnode-dev, Debian's node-gyp; no prebuilt download: those come from
# GitHub, which CI machines may not reach), once per lockfile, cached in the root. It needs no checkout state, so
# it runs with --build-only, beside the machine's suite.
build_addon() {
  if [ "$host_abi" = "$root_abi" ] || [ -f "$addon_cache" ]; then return 0; fi
  local started version
  started=$(date +%s)
  version="$(node -p 'require(process.argv[1]).packages["node_modules/better-sqlite3"].version' "$CHECKOUT/package-lock.json" 2>/dev/null ||
    grep -A2 '"node_modules/better-sqlite3"' "$CHECKOUT/package-lock.json" | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -1)"
  log "compiling better-sqlite3 $version for the root's Node ABI $root_abi (the machine's: $host_abi)"
  in_root "$ROOT" host sh -c '
    set -e
    rm -rf /var/cache/autossl-ci/addon && mkdir -p /var/cache/autossl-ci/addon && cd /var/cache/autossl-ci/addon
    npm pack --silent "better-sqlite3@$1" >/dev/null && tar -xzf better-sqlite3-*.tgz
    cd package && node-gyp rebuild --release --nodedir=/usr
  ' sh "$version" >"$ROOTS/.$SUITE.addon.log" 2>&1 || {
    tail -30 "$ROOTS/.$SUITE.addon.log" >&2
    log "FAILED: better-sqlite3 did not compile for the root's Node"
    exit 1
  }
  rm -f "$ROOT"/var/cache/autossl-ci/better_sqlite3.*.node
  cp "$ROOT/var/cache/autossl-ci/addon/package/build/Release/better_sqlite3.node" "$addon_cache"
  rm -rf "$ROOT/var/cache/autossl-ci/addon"
  log "better-sqlite3 compiled in $(($(date +%s) - started)) s"
}

build_root
lock="$(sha256sum "$CHECKOUT/package-lock.json" | cut -c1-16)"
host_abi="$(node -p process.versions.modules 2>/dev/null || echo none)"
root_abi="$(in_root "$ROOT" host node -p process.versions.modules)"
addon_cache="$ROOT/var/cache/autossl-ci/better_sqlite3.$lock.abi$root_abi.node"
build_addon
if [ "$BUILD_ONLY" = 1 ]; then exit 0; fi
# The test CA: every rig runs Debian sid's pebble 2.10 (ARI, profiles; Debian 13's 2.6 has neither), on every
# platform as on the machine. The suite's global setup fetches it (scripts/pebble-sid.sh) unless AUTOSSL_PEBBLE names
# one, which a root without network cannot: the machine's copy (AUTOSSL_PEBBLE, or fetched here) goes in.
if [ -f "$CHECKOUT/scripts/pebble-sid.sh" ]; then
  pebble="${AUTOSSL_PEBBLE:-$(bash "$CHECKOUT/scripts/pebble-sid.sh")}" || { log "FAILED: no pebble for the test rig"; exit 1; }
  mkdir -p "$ROOT/opt/autossl-pebble"
  cp "$pebble" "$(dirname "$pebble")/pebble-challtestsrv" "$ROOT/opt/autossl-pebble/"
  export AUTOSSL_ROOT_PEBBLE=/opt/autossl-pebble/pebble
fi
if [ "$EXEC" = 1 ]; then
  # shellcheck disable=SC2016
  exec_cmd='cd /work/autossl && "$@"'
  in_root "$ROOT" private sh -c "$exec_cmd" sh "$@"
  exit $?
fi

log "copying the checkout into the root"
rm -rf "$ROOT"/work/node_modules.* "$ROOT/work/autossl"
mkdir -p "$ROOT/work/autossl"
tar -C "$CHECKOUT" --exclude=./node_modules --exclude=./dist --exclude=./.git -cf - . | tar -C "$ROOT/work/autossl" -xf -
# The nginx corpus the editor tests read, when the machine has it.
if [ -n "${AUTOSSL_CORPUS:-}" ] && [ -d "$AUTOSSL_CORPUS" ]; then
  rm -rf "$ROOT/work/nginx-corpus"
  cp -r "$AUTOSSL_CORPUS" "$ROOT/work/nginx-corpus"
fi

in_root "$ROOT" host sh -c 'update-ca-certificates >/dev/null 2>&1 || true'
started=$(date +%s)
# The dependencies: the machine's node_modules (npm ci ran there, same package-lock.json) is copied in, with
# better-sqlite3's binary from build_addon when the root's Node has another ABI. Without the machine's
# node_modules (a run by hand before npm ci), npm ci runs in the root.
addon=node_modules/better-sqlite3/build/Release/better_sqlite3.node
if [ -f "$CHECKOUT/node_modules/.package-lock.json" ] && [ -z "${AUTOSSL_CI_FRESH_NPM:-}" ]; then
  # tar, not cp -a: the machine's suite may run meanwhile and write its caches there (eslint's, vite's)
  mkdir -p "$ROOT/work/autossl/node_modules"
  tar -C "$CHECKOUT/node_modules" --exclude=./.cache --exclude=./.vite --exclude=./.vitest -cf - . | tar -C "$ROOT/work/autossl/node_modules" -xf -
  if [ "$host_abi" = "$root_abi" ]; then
    log "node_modules copied from the machine (Node ABI $root_abi, as the machine's)"
  else
    cp "$addon_cache" "$ROOT/work/autossl/$addon"
    log "node_modules copied from the machine; better-sqlite3 built for the root's Node ABI $root_abi"
  fi
else
  log "npm ci (no node_modules on the machine, or AUTOSSL_CI_FRESH_NPM=1)"
  in_root "$ROOT" host sh -c 'cd /work/autossl && npm ci --no-audit --no-fund' >&2
  log "npm ci took $(($(date +%s) - started)) s"
fi
in_root "$ROOT" host sh -c 'cd /work/autossl && node -e "new (require(\"better-sqlite3\"))(\":memory:\").close()"' || {
  log "FAILED: better-sqlite3 does not load with the root's Node"
  exit 1
}

versions="$(in_root "$ROOT" host sh -c "$VERSIONS_CMD")"
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
# vitest's exit status judges (a file that fails before its tests run counts in no "Tests" number); the summary
# lines give the counts. The root's /tmp is its own: what the suite left there is counted before it goes.
# The whole suite runs in the private network namespace but test/package, which binds nothing and installs the
# packed tarball with npm (the registry: the machine's network, as on the machine).
run_vitest() {
  local net="$1"
  shift
  # shellcheck disable=SC2086
  in_root "$ROOT" "$net" sh -c "cd /work/autossl && $VITEST_THEN_COUNT" sh env $corpus_env npx vitest run "$@" 2>&1 | tee -a "$out" >&2
  return "${PIPESTATUS[0]}"
}
: >"$out"
vitest_rc=0
set +e
if [ $# -gt 0 ]; then
  run_vitest private "$@" || vitest_rc=$?
else
  run_vitest private --exclude 'test/package/**' || vitest_rc=$?
  run_vitest host test/package || vitest_rc=$?
fi
set -e
vitest_summary "$out"
[ "$vitest_rc" = 0 ] || status=1
[ "$LEFT_IN_TMP" = 0 ] || status=1
log "tests took $(($(date +%s) - started)) s"
echo "$SUITE ($versions): $demo; $SUMMARY; vitest exit $vitest_rc"
exit $status
