#!/usr/bin/env bash
# Fleet reconnect benchmark: N event links (default 1000) in their own
# process(es) against devcloud's SigV4 broker in another; the broker stops
# for -down once all are connected and starts again on the same address,
# and the per-second histogram of reconnects is printed (goal: no second
# with more than 5 % of N), beside the broker's counts and the links
# process's memory per link. With -restart-faults '{"ConnectRate":100}' the
# broker comes back with a connect quota, and the report says how the
# accepted CONNECTs kept to it and that no link gave up.
#   scripts/bench/fleet/fleet.sh [flags of scripts/bench/fleet, e.g. -n 10000 -down 60s]
set -euo pipefail
cd "$(dirname "$0")/../../.."
# The broker and each links process hold about one descriptor per link:
# raise the soft limit to the hard one (Go does too, in each process),
# at least 8192 if allowed.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 8192 2>/dev/null || true
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
go build -trimpath -o "$out/fleet" ./scripts/bench/fleet
echo "# $(go version), $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ), ulimit -n $(ulimit -n)"
echo "# fleet $*"
"$out/fleet" "$@"
