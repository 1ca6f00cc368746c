#!/usr/bin/env bash
# Two builds of autossl side by side, same run: bench/issue-one, bench/batch 20, bench/vhost-scale 2000 and
# bench/status-scale 10000 in BEFORE_DIR and AFTER_DIR (each a checkout built with `npx tsc`, node_modules in place),
# alternating before/after (A B A B ...) so the machine's load falls on both alike. Each build runs its own bench
# scripts (the figures they print are the same lines in both). Prints a table: bench, before, after, after/before,
# each cell the median of the rounds (each round's figure in brackets). The certbot figures are the same program in
# both columns: their ratio is the run's noise, the bar an autossl ratio has to be read against.
#
#   ip netns exec ns-NAME nice bench/compare.sh BEFORE_DIR AFTER_DIR
#
# Needs root and the Debian packages (pebble, nginx, certbot); binds loopback only, so run it in a private network
# namespace (pebble's fixed ports). ROUNDS (default 2) sets the rounds, BENCHES a subset (e.g. "vhost status"),
# LOGS a directory to keep each run's output in (default: a new one under /tmp, printed at the end); TABLE_ONLY=1
# prints the table from the logs in LOGS without running anything. certbot's installer on the 2,000-vhost tree is
# stopped after CERTBOT_LIMIT_S (default here 20 s; it took 330 s under this machine's load): its time is a
# reference for the bench's own bar, not a figure of autossl's.
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 BEFORE_DIR AFTER_DIR" >&2
  exit 2
fi
BEFORE="$(cd "$1" && pwd)"
AFTER="$(cd "$2" && pwd)"
ROUNDS="${ROUNDS:-2}"
BENCHES="${BENCHES:-issue batch vhost status}"
LOGS="${LOGS:-$(mktemp -d /tmp/autossl-bench-compare.XXXXXX)}"
mkdir -p "$LOGS"
for d in "$BEFORE" "$AFTER"; do
  for b in issue-one batch vhost-scale status-scale; do
    [ -f "$d/dist/bench/$b.js" ] || { echo "$d/dist/bench/$b.js missing: build $d first (npx tsc -p tsconfig.json)" >&2; exit 2; }
  done
done

# bench key -> script and arguments
declare -A SCRIPT=([issue]="issue-one.js" [batch]="batch.js 20" [vhost]="vhost-scale.js 2000" [status]="status-scale.js 10000")
# bench key -> "label|grep pattern|awk field holding the figure" for each figure read from its output
declare -A METRICS=(
  [issue]="issue-one: autossl issue (s)|^autossl +median|3
issue-one: certbot --nginx (s, control)|^certbot --nginx +median|4
issue-one: certbot --webroot (s, control)|^certbot --webroot +median|4"
  [batch]="batch 20: autossl issue --all (s)|autossl issue --all|4
batch 20: certonly --webroot x20 (s, control)|sequential certonly|4
batch 20: certbot --nginx x20 (s, control)|sequential certbot --nginx|4"
  [vhost]="vhost-scale 2000: locate+edit cold (ms)|cold index|7
vhost-scale 2000: locate+edit warm (ms)|warm index|7
vhost-scale 2000: warm + nginx -t (ms)|warm \\+ nginx -t|6
vhost-scale 2000: certbot install --nginx (ms, control)|^certbot install --nginx +[0-9]|4"
  [status]="status-scale 10000: status cold (s)|autossl status, cold|4
status-scale 10000: status warm (s)|autossl status, warm|4
status-scale 10000: certbot certificates (s, control)|^certbot certificates|3"
)

run() { # run KEY SIDE DIR ROUND
  local key=$1 side=$2 dir=$3 round=$4 log="$LOGS/$1-$2-$4.log" t0
  t0=$(date +%s)
  # shellcheck disable=SC2086 # the arguments are words
  if ! (cd "$dir" && node dist/bench/${SCRIPT[$key]}) >"$log" 2>&1; then
    echo "[compare] $key $side round $round FAILED (log: $log)" >&2
    tail -5 "$log" >&2
    return 1
  fi
  echo "[compare] $key $side round $round: $(($(date +%s) - t0)) s" >&2
}

export CERTBOT_LIMIT_S="${CERTBOT_LIMIT_S:-20}"
for key in $BENCHES; do
  [ -n "${SCRIPT[$key]:-}" ] || { echo "unknown bench '$key' (issue batch vhost status)" >&2; exit 2; }
  [ "${TABLE_ONLY:-0}" = 1 ] && continue
  for ((r = 1; r <= ROUNDS; r++)); do
    # a failed run leaves its cell empty ("-"); the others still run
    run "$key" before "$BEFORE" "$r" || true
    run "$key" after "$AFTER" "$r" || true
  done
done

figure() { # figure LOG PATTERN FIELD (nothing when the log or the line is missing)
  [ -f "$1" ] || return 0
  grep -E -m1 "$2" "$1" | awk -v f="$3" '{ print $f }' || true
}
median() { # the median of its arguments (the mean of the middle two for an even count)
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

echo
echo "before: $BEFORE ($(git -C "$BEFORE" log -1 --format='%h %s' 2>/dev/null | cut -c1-70))"
echo "after:  $AFTER ($(git -C "$AFTER" log -1 --format='%h %s' 2>/dev/null | cut -c1-70))"
echo "$ROUNDS rounds, alternating before/after; medians, each round in brackets; load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-56s %-24s %-24s %s\n' bench before after after/before
for key in $BENCHES; do
  while IFS='|' read -r label pattern field; do
    cells=()
    for side in before after; do
      vals=()
      for ((r = 1; r <= ROUNDS; r++)); do
        v=$(figure "$LOGS/$key-$side-$r.log" "$pattern" "$field")
        [ -n "$v" ] && vals+=("$v")
      done
      if [ ${#vals[@]} -eq 0 ]; then cells+=("-" "-"); continue; fi
      cells+=("$(median "${vals[@]}")" "$(IFS=,; echo "${vals[*]}")")
    done
    ratio=$(awk -v b="${cells[0]}" -v a="${cells[2]}" 'BEGIN { if (b + 0 > 0) printf "%.2f", a / b; else print "-" }')
    printf '%-56s %-24s %-24s %s\n' "$label" "${cells[0]} [${cells[1]}]" "${cells[2]} [${cells[3]}]" "$ratio"
  done <<<"${METRICS[$key]}"
done
echo "logs: $LOGS"
