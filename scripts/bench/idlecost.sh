#!/usr/bin/env bash
# Idle cost per node (issue 19): the messages and bytes an hour an idle
# node sends and receives on each link, the real agent binary (built as
# it ships) on its production defaults against a dev stack whose servers
# count their traffic. Prints the table per link and the node's total in
# messages per minute (goal: at most 1). Takes WINDOW + SCALED_WINDOW plus
# about 2 minutes of start-ups.
#   scripts/bench/idlecost.sh [flags of scripts/bench/idlecost, e.g. -window 10m -scaled-window 8m]
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
(CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$out/edgefort" ./cmd/edgefort)
go build -o "$out/idlecost" ./scripts/bench/idlecost
echo "# $(go version), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%Y-%m-%dT%H:%MZ)"
echo "# edgefort at $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . 2>/dev/null || echo ' (work tree changed)')"
"$out/idlecost" -edgefort "$out/edgefort" "$@"
