#!/usr/bin/env bash
# Drives `edgefort dev` non-interactively and asserts what a newcomer would
# see: every component running, readyz 200, metrics scrapeable, and a clean
# exit on Ctrl-C (SIGINT) that removes the temporary state directory.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
dev_pid=""
cleanup() {
  if [ -n "$dev_pid" ] && kill -0 "$dev_pid" 2>/dev/null; then kill -9 "$dev_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

passed=0
failed=0
check() { # check NAME COMMAND...: runs the command, records the result
  local name=$1; shift
  if "$@"; then
    echo "ok   $name"; passed=$((passed + 1))
  else
    echo "FAIL $name"; failed=$((failed + 1))
  fi
}
dump() { echo "--- edgefort dev stdout"; cat "$work/out" >&2; echo "--- stderr"; cat "$work/err" >&2; }

go build -o "$work/edgefort" ./cmd/edgefort
ef="$work/edgefort"

"$ef" dev >"$work/out" 2>"$work/err" &
dev_pid=$!

# Wait for the banner (bounded: 30 s).
for _ in $(seq 300); do
  grep -q 'Ctrl-C stops it' "$work/out" 2>/dev/null && break
  kill -0 "$dev_pid" 2>/dev/null || { dump; echo "edgefort dev exited before it was ready" >&2; exit 1; }
  sleep 0.1
done
grep -q 'Ctrl-C stops it' "$work/out" || { dump; echo "edgefort dev did not become ready in 30 s" >&2; exit 1; }

field() { awk -v k="$1" '$1 == k { print $2 }' "$work/out"; }
socket=$(awk '$1 == "admin" && $2 == "socket" { print $3 }' "$work/out")
metrics=$(field metrics)
state_dir=$(awk '$1 == "state" && $2 == "dir" { print $3 }' "$work/out")
echo "socket=$socket metrics=$metrics state_dir=$state_dir"

check "banner names the admin socket" test -S "$socket"
check "admin socket is mode 0600" test "$(stat -c %a "$socket")" = 600
"$ef" status --socket "$socket" >"$work/status" || true
cat "$work/status"
check "status lists admin running" grep -Eq '^admin +running' "$work/status"
check "status lists metrics running" grep -Eq '^metrics +running' "$work/status"
check "status --json says ready" sh -c "'$ef' status --json --socket '$socket' | grep -q '\"ready\": true'"
check "readyz answers 200" test "$(curl -s -o /dev/null -w '%{http_code}' --unix-socket "$socket" http://edgefort/readyz)" = 200
check "healthz answers 200" test "$(curl -s -o /dev/null -w '%{http_code}' --unix-socket "$socket" http://edgefort/healthz)" = 200
curl -sf "$metrics" >"$work/metrics" || true
check "metrics are scrapeable" grep -q '^edgefort_supervisor_component_up{component="admin"} 1' "$work/metrics"
check "metrics include the Go runtime" grep -q '^go_goroutines ' "$work/metrics"
check "metrics include the process" grep -q '^process_resident_memory_bytes ' "$work/metrics"

kill -INT "$dev_pid"
rc=0
for _ in $(seq 150); do kill -0 "$dev_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$dev_pid" 2>/dev/null; then
  rc=timeout
else
  wait "$dev_pid" || rc=$?
fi
dev_pid=""
check "Ctrl-C exits 0 within 15 s (got $rc)" test "$rc" = 0
check "the temporary state directory is removed" test ! -e "$state_dir"
check "shutdown is logged" grep -q 'msg=stopped' "$work/err"

[ "$failed" = 0 ] || dump
echo "demo: $passed passed, $failed failed"
[ "$failed" = 0 ]
