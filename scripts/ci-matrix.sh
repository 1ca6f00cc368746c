#!/usr/bin/env bash
# The platform matrix, as root on a Debian 12 machine (bash .ci/run ends here): the README's demo and the whole
# suite on the machine (scripts/ci-host.sh), in a Debian 13 and in a Debian sid root (scripts/ci-root.sh), the three
# AT ONCE, each in its own mount and network namespaces: vitest runs a suite's files one by one (they share fixed
# ports inside one namespace), so one suite keeps about one core busy, and three fit 2 cores in about the time of
# the slowest. Each platform is printed with its certbot, nginx and Node versions, its demo result and its own pass
# count; the exit status is non-zero when any of them fails or a root cannot be built (an archive out of reach is
# a failure, not a skip).
#
#   scripts/ci-matrix.sh      (AUTOSSL_CI_SUITES="trixie sid" by default; "" = the machine only)
#
# Each suite's output goes to its own log (AUTOSSL_CI_LOGS, default /var/tmp/autossl-ci/<time>); the console gets
# one line per suite when it ends, the failed tests of a failed suite, and the summary at the end. The roots are
# built (debootstrap + apt-get, ~10 min each on a fresh machine; cached afterwards) while npm ci runs; a root's
# suite starts once the machine's node_modules exists (ci-root.sh copies it in).
set -euo pipefail
cd "$(dirname "$0")/.."
SUITES="${AUTOSSL_CI_SUITES-trixie sid}"
LOGS="${AUTOSSL_CI_LOGS:-/var/tmp/autossl-ci/$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$LOGS"
t0=$(date +%s)
log() { echo "[ci +$(($(date +%s) - t0)) s] $*"; }

if [ -n "$SUITES" ] && ! command -v debootstrap >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq debootstrap >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq debootstrap; }
fi

# The roots wait on this lock for the machine's node_modules: held (exclusively) until npm ci is through.
npm_lock="$LOGS/.npm-ci.lock"
exec 8>"$npm_lock"
flock 8

# root_suite SUITE: build the root (or take it from the cache), wait for npm ci, then the demo and the suite in it.
root_suite() {
  local s="$1"
  log "$s: building the root (or taking it from the cache)" >&2
  if ! scripts/ci-root.sh "$s" --build-only; then
    echo "$s: FAILED: the root could not be built"
    return 1
  fi
  flock -s "$npm_lock" true
  if [ -e "$LOGS/.npm-ci-failed" ]; then
    echo "$s: not run: npm ci failed on the machine"
    return 1
  fi
  scripts/ci-root.sh "$s"
}

declare -A suite_of
for s in $SUITES; do
  root_suite "$s" >"$LOGS/$s.summary" 2>"$LOGS/$s.log" 8>&- &
  suite_of[$!]="$s"
  log "$s: started (log: $LOGS/$s.log)"
done

log "npm ci (log: $LOGS/npm-ci.log)"
if npm ci --no-audit --no-fund >"$LOGS/npm-ci.log" 2>&1; then
  flock -u 8
  scripts/ci-host.sh >"$LOGS/machine.summary" 2>"$LOGS/machine.log" 8>&- &
  suite_of[$!]=machine
  log "machine: started (log: $LOGS/machine.log)"
else
  tail -30 "$LOGS/npm-ci.log"
  touch "$LOGS/.npm-ci-failed"
  flock -u 8
fi
exec 8>&-
status=0
declare -A line_of
if [ -e "$LOGS/.npm-ci-failed" ]; then
  status=1
  line_of[machine]="machine: not run: npm ci failed"
fi

# shellcheck disable=SC2206
order=(machine $SUITES)
while [ ${#suite_of[@]} -gt 0 ]; do
  set +e
  wait -n -p done_pid "${!suite_of[@]}"
  rc=$?
  set -e
  s="${suite_of[$done_pid]}"
  unset "suite_of[$done_pid]"
  line="$(tail -1 "$LOGS/$s.summary" 2>/dev/null)"
  [ -n "$line" ] || line="$s: FAILED: $(tail -1 "$LOGS/$s.log")"
  line_of[$s]="$line; exit $rc; $(($(date +%s) - t0)) s after the start"
  log "${line_of[$s]}"
  if [ "$rc" != 0 ]; then
    status=1
    # what failed, from vitest's report (the whole output stays in the log); "FAILED:" and not FAILED alone: passing
    # tests are named after the codes they check (NGINX_TEST_FAILED)
    sed 's/\x1b\[[0-9;]*m//g' "$LOGS/$s.log" | awk '/^\/.*\.[jt]s$/ { file = $0; next } /^ +[0-9]+:[0-9]+ +error / { sub(/^ +/, ""); print file ":" $0; next } /^ FAIL |FAILED:|demo FAILED|error TS[0-9]+/' |
      awk '!seen[$0]++' | head -40 | sed "s/^/  $s: /"
  fi
done

# CPU time of everything this script started (the suites, the root builds, npm ci): user and system
# (times in this shell, not in a subshell: a subshell's children are its own)
times >"$LOGS/.times"
read -r cpu_user cpu_sys < <(tail -1 "$LOGS/.times" | awk '{ for (i = 1; i <= 2; i++) { split($i, t, /[ms]/); printf "%d ", t[1] * 60 + t[2] } print "" }')
echo
echo "platform matrix: $(($(date +%s) - t0)) s wall clock; CPU user $cpu_user s, sys $cpu_sys s; logs in $LOGS"
for s in "${order[@]}"; do
  [ -n "${line_of[$s]:-}" ] && echo "  ${line_of[$s]}"
done
exit $status
