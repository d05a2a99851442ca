#!/usr/bin/env bash
# Idle agent benchmark: start-to-ready time and settled RSS of `edgefort
# run` on two configurations, minimal (admin and metrics) and every link on
# against a dev stack (devcloud/devstack, started by the helper), beside
# Prometheus's node_exporter and the smallest Go HTTP daemon (the floor)
# measured the same way in the same run. Builds
# the binary as it ships (-trimpath, stripped) and prints its size, and the
# packages that weigh most in it.
#   scripts/bench/idle.sh [RUNS] [BASE]
# With BASE, a git revision (e.g. main), the product binary of that
# revision is built and measured too, in the same run, its runs interleaved
# with the work tree's: a before/after.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v prometheus-node-exporter >/dev/null && [ "$(id -u)" = 0 ]; then
  apt-get install -y -qq --no-install-recommends prometheus-node-exporter >/dev/null || true
fi
runs=${1:-10}
base=${2:-}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
release() { # release DIR OUT: the product binary as it ships
  (cd "$1" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$2" ./cmd/edgefort)
}
release . "$out/edgefort"
if [ -n "$base" ]; then
  mkdir "$out/base"
  git archive "$base" | tar -x -C "$out/base"
  release "$out/base" "$out/edgefort-base"
fi
echo "# $(go version), $(nproc) cores, $(date -u +%Y-%m-%d)"
echo "# size: CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' ./cmd/edgefort"
size() { stat -c %s "$2" | awk -v n="$1" '{ printf "%-34s %10d bytes %6.1f MiB\n", n, $1, $1 / 1048576 }'; }
[ -z "$base" ] || size "edgefort at $base ($(git rev-parse --short "$base"))" "$out/edgefort-base"
size "edgefort at the work tree" "$out/edgefort"
# The heaviest packages: symbol sizes of the same build unstripped, code
# and read-only data only (nm marks bss, which takes no file space, as
# data too), and not the tables no package owns, such as pclntab.
(CGO_ENABLED=0 go build -trimpath -o "$out/edgefort-syms" ./cmd/edgefort)
go tool nm -size "$out/edgefort-syms" | awk '
  $3 ~ /^[TtRr]$/ {
    name = $4
    if (name ~ /^(go:|type:|runtime\.gcbits|gclocals|\$)/) { pkg = "(type descriptors, runtime metadata)" }
    else {
      sub(/\[.*$/, "", name)  # generic instantiations count for their package
      s = match(name, /\/[^\/]*$/); rest = substr(name, s + 1); d = index(rest, ".")
      pkg = (d > 0) ? substr(name, 1, s + d - 1) : name
    }
    n = split(pkg, p, "/")
    mod = (p[1] !~ /\./) ? "(standard library)" : (pkg ~ /^github.com\/edgefort\//) ? "(edgefort)" : p[1] "/" p[2] (n > 2 && p[1] ~ /^(github.com|golang.org)$/ ? "/" p[3] : "")
    if (pkg ~ /^\(/) mod = pkg
    bypkg[pkg] += $2 / 1024; bymod[mod] += $2 / 1024; total += $2 / 1024 }
  END {
    printf "# symbols: %.0f KiB of code and read-only data (go tool nm -size)\n", total
    for (k in bypkg) printf "pkg %9.0f KiB  %s\n", bypkg[k], k
    for (k in bymod) printf "mod %9.0f KiB  %s\n", bymod[k], k
  }' >"$out/weights"
head -1 "$out/weights"
# awk, not head: head's early exit would end sort with SIGPIPE, and
# pipefail the script.
echo "# heaviest packages:"
grep '^pkg ' "$out/weights" | sort -k2 -rn | awk 'NR <= 15' | cut -c5-
echo "# by module (edgefort's own packages together):"
grep '^mod ' "$out/weights" | sort -k2 -rn | awk 'NR <= 12' | cut -c5-
[ -z "$base" ] || echo "# edgefort (base) is edgefort at $base"
go build -o "$out/idle" ./scripts/bench/idle
# The floor: the smallest Go HTTP daemon, built as the agent is.
(CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$out/floor" ./scripts/bench/idle/floor)
size "floor (scripts/bench/idle/floor)" "$out/floor"
"$out/idle" -edgefort "$out/edgefort" ${base:+-base "$out/edgefort-base"} -floor "$out/floor" -runs "$runs"
