# shellcheck shell=bash
# Shared by scripts/ci-host.sh and scripts/ci-root.sh (sourced): how a platform is named and how a suite's vitest
# output is summed up, the same on the machine and in a root.

# The versions a platform is printed with: a shell command, run on the machine or inside a root.
# shellcheck disable=SC2016
VERSIONS_CMD='echo "certbot $(certbot --version 2>&1 | cut -d" " -f2), nginx $(nginx -v 2>&1 | cut -d/ -f2), Node $(node -v | tr -d v)"'

# The shell line that runs vitest with the arguments after it and then counts what the run left in /tmp (the
# suite's own /tmp: each suite runs in a mount namespace with a tmpfs there), keeping vitest's exit status.
# shellcheck disable=SC2016
VITEST_THEN_COUNT='"$@"; rc=$?; echo "autossl-* left in /tmp: $(ls -d /tmp/autossl-* 2>/dev/null | wc -l)"; exit $rc'

# vitest_summary LOG sets SUMMARY to "P passed, F failed (test files: …); autossl-* left in /tmp: N" over every
# vitest run in LOG (a suite runs vitest twice: without and with the machine's network), and LEFT_IN_TMP to N.
# vitest's exit status judges, not these counts (a file failing in beforeAll counts in no "Tests" line).
vitest_summary() {
  local out="$1" passed failed files
  _count() { sed 's/\x1b\[[0-9;]*m//g' "$out" | awk -v what="$1" -v kind="$2" '$0 ~ "^ +" what " +" { for (i = 2; i <= NF; i++) if ($i == kind && $(i - 1) ~ /^[0-9]+$/) s += $(i - 1) } END { print s + 0 }'; }
  passed="$(_count Tests passed)"
  failed="$(_count Tests failed)"
  files="$(_count 'Test Files' failed) failed, $(_count 'Test Files' passed) passed"
  LEFT_IN_TMP="$(awk '/^autossl-\* left in \/tmp: [0-9]+$/ { s += $NF; n++ } END { print n ? s : "?" }' "$out")"
  SUMMARY="$passed passed, $failed failed (test files: $files); autossl-* left in /tmp: $LEFT_IN_TMP"
}
