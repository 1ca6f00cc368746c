#!/usr/bin/env bash
# The platform matrix, as root on a Debian 12 machine: the whole suite on the machine (bash .ci/run), then the
# README's demo and the whole suite in a Debian 13 and a Debian sid root (scripts/ci-root.sh). Each platform is
# printed with its certbot, nginx and Node versions and its own pass count; the exit status is non-zero when any
# of them fails or a root cannot be built.
#
#   scripts/ci-matrix.sh            (AUTOSSL_CI_SUITES="trixie sid" by default)
#
# The roots are built (debootstrap + apt-get, network and disk bound, ~10 min each on a fresh machine; cached
# afterwards) while the machine's suite runs; the roots' suites run one after the other once the machine's
# node_modules exists (ci-root.sh copies it in instead of running npm ci there).
set -euo pipefail
cd "$(dirname "$0")/.."
SUITES="${AUTOSSL_CI_SUITES:-trixie sid}"
LOGS="$(mktemp -d /tmp/autossl-ci-matrix.XXXXXX)"
t0=$(date +%s)
log() { echo "[ci-matrix +$(($(date +%s) - t0)) s] $*" >&2; }
summaries=()
status=0

if ! command -v debootstrap >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq debootstrap >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq debootstrap; }
fi

# Root builds in the background: they spend their time on the archive and the disk, the suite on the CPU.
declare -A build_pid
for s in $SUITES; do
  log "building the $s root in the background (log: $LOGS/build-$s.log)"
  scripts/ci-root.sh "$s" --build-only >"$LOGS/build-$s.log" 2>&1 &
  build_pid[$s]=$!
done

log "the machine: bash .ci/run (packages, npm ci, npm test)"
started=$(date +%s)
set +e
bash .ci/run 2>&1 | tee "$LOGS/host.log"
host_rc=${PIPESTATUS[0]}
set -e
summary="$(sed 's/\x1b\[[0-9;]*m//g' "$LOGS/host.log" | grep -E '^ +Tests +' | tail -1 | sed 's/^ *Tests *//')"
versions="certbot $(certbot --version 2>&1 | cut -d' ' -f2), nginx $(nginx -v 2>&1 | cut -d/ -f2), Node $(node -v | tr -d v)"
os="$(. /etc/os-release && echo "$ID $VERSION_ID")"
[ "$host_rc" = 0 ] || status=1
summaries+=("machine, $os ($versions): ${summary:-no test summary}; exit $host_rc; $(($(date +%s) - started)) s")
log "${summaries[-1]}"

for s in $SUITES; do
  if ! wait "${build_pid[$s]}"; then
    cat "$LOGS/build-$s.log" >&2
    summaries+=("$s: the root could not be built")
    status=1
    continue
  fi
  log "$s root ready: $(grep 'root built' "$LOGS/build-$s.log" || echo 'cached from an earlier run')"
  started=$(date +%s)
  set +e
  scripts/ci-root.sh "$s" >"$LOGS/$s.out" 2> >(tee "$LOGS/$s.log" >&2)
  rc=$?
  set -e
  [ "$rc" = 0 ] || status=1
  summaries+=("$(tail -1 "$LOGS/$s.out" 2>/dev/null || echo "$s: no summary"); exit $rc; $(($(date +%s) - started)) s")
  log "${summaries[-1]}"
done

echo
echo "platform matrix ($(($(date +%s) - t0)) s in all; logs in $LOGS):"
for line in "${summaries[@]}"; do echo "  $line"; done
exit $status
