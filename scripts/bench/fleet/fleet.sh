#!/usr/bin/env bash
# Fleet reconnect benchmark: N event links (default 1000) against devcloud's
# SigV4 broker in one process; the broker restarts after all are connected
# and the per-second histogram of reconnects is printed (goal: no second
# with more than 5 % of N).
#   scripts/bench/fleet.sh [flags of scripts/bench/fleet, e.g. -n 1000 -down 30s]
set -euo pipefail
cd "$(dirname "$0")/../../.."
# Each link holds about four descriptors (its socket, the relay's two, the
# broker's); raise the soft limit to the hard one, at least 8192 if allowed.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 8192 2>/dev/null || true
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
go build -trimpath -o "$out/fleet" ./scripts/bench/fleet
echo "# $(go version), $(nproc) cores, $(date -u +%Y-%m-%d), ulimit -n $(ulimit -n)"
echo "# fleet $*"
"$out/fleet" "$@"
