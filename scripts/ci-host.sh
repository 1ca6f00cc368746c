#!/usr/bin/env bash
# The README's demo and the whole suite on the machine itself (Debian 12 in CI), the way scripts/ci-root.sh runs
# them in a root: in a mount namespace of its own with a private /tmp (what the suite leaves there is counted) and
# a network namespace with only lo, so nginx, pebble and challtestsrv bind nothing of the machine and the roots'
# suites run beside it; test/package runs with the machine's network (it binds nothing; its npm install needs the
# registry). Run `npm ci` first.
#
#   scripts/ci-host.sh [TEST_FILE...]      (without TEST_FILE: npm test, i.e. build, lint and the whole suite)
#
# Progress and vitest's output go to stderr; the last line on stdout is the summary. Exit status: non-zero when the
# demo or a test fails or the suite leaves an autossl-* directory in /tmp.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/ci-lib.sh
. scripts/ci-lib.sh
log() { echo "[ci-host] $*" >&2; }

# in_ns private|host CMD...: CMD in a new mount namespace with a tmpfs on /tmp; "private" also in a new network
# namespace with only lo up.
in_ns() {
  local net="$1" unshare_net=""
  shift
  [ "$net" = private ] && unshare_net="--net"
  # shellcheck disable=SC2086
  unshare --mount --propagation private $unshare_net -- sh -c '
    set -e
    if [ "$1" = private ]; then ip link set lo up; fi
    mount -t tmpfs tmpfs /tmp
    shift
    exec "$@"
  ' sh "$net" "$@"
}

platform="$(. /etc/os-release && echo "${PRETTY_NAME:-$ID $VERSION_ID}")"
versions="$(sh -c "$VERSIONS_CMD")"
log "$platform: $versions"
status=0
started=$(date +%s)
log "npm run demo"
if in_ns private npm run demo >&2; then demo="demo ok"; else demo="demo FAILED"; status=1; fi
log "$demo in $(($(date +%s) - started)) s"

started=$(date +%s)
out="$(mktemp /var/tmp/vitest-host.XXXXXX.log)"
trap 'rm -f "$out"' EXIT
run_vitest() {
  local net="$1"
  shift
  in_ns "$net" sh -c "$VITEST_THEN_COUNT" sh "$@" 2>&1 | tee -a "$out" >&2
  return "${PIPESTATUS[0]}"
}
vitest_rc=0
stopped=""
set +e
if [ $# -gt 0 ]; then
  run_vitest private npx vitest run "$@" || vitest_rc=$?
else
  # npm test: an empty dist, tsc, eslint, then vitest with these arguments
  run_vitest private npm test -- --exclude 'test/package/**' || vitest_rc=$?
  # npm test stops before vitest when tsc or eslint fails: say so, vitest's counts would not
  if [ "$vitest_rc" != 0 ] && ! grep -q 'Test Files' "$out"; then stopped="; npm test stopped before vitest (tsc or eslint failed)"; fi
  run_vitest host npx vitest run test/package || vitest_rc=$?
fi
set -e
vitest_summary "$out"
[ "$vitest_rc" = 0 ] || status=1
[ "$LEFT_IN_TMP" = 0 ] || status=1
log "tests took $(($(date +%s) - started)) s"
echo "$platform, the machine ($versions): $demo; $SUMMARY$stopped; vitest exit $vitest_rc"
exit $status
