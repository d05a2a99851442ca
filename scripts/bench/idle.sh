#!/usr/bin/env bash
# Idle agent benchmark: start-to-ready time and settled RSS of `edgefort
# run`, beside Prometheus's node_exporter measured the same way in the same
# run. Builds the binary as it ships (-trimpath, stripped).
#   scripts/bench/idle.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v prometheus-node-exporter >/dev/null && [ "$(id -u)" = 0 ]; then
  apt-get install -y -qq --no-install-recommends prometheus-node-exporter >/dev/null || true
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
go build -trimpath -ldflags='-s -w' -o "$out/edgefort" ./cmd/edgefort
echo "# $(go version), $(nproc) cores, $(date -u +%Y-%m-%d)"
go run ./scripts/bench/idle -edgefort "$out/edgefort" -runs "${1:-10}"
