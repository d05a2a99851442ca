#!/usr/bin/env bash
# Artifact validation benchmark: on one payload (default 1 GiB), side by
# side in one run, the time and peak RSS of
#   openssl dgst -sha256 PAYLOAD           (the SHA-256 limit)
#   edgefort artifact validate ARTIFACT
#   mender-artifact validate ARTIFACT      (Debian's mender-artifact)
# for an uncompressed and a gzip artifact (and zstd for edgefort alone:
# mender-artifact 3.9 reads no zstd). Each command runs RUNS times (default
# 3) after a warm-up read, so the page cache holds the files; the best time
# is reported.
#   scripts/bench/artifact.sh [SIZE_MIB] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/../.."
size_mib=${1:-1024}
runs=${2:-3}
for tool in openssl mender-artifact; do
  command -v "$tool" >/dev/null || { echo "artifact.sh: $tool is required (apt-get install $tool)" >&2; exit 1; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -trimpath -ldflags='-s -w' -o "$work/edgefort" ./cmd/edgefort
ef="$work/edgefort"

# A payload that does not compress (random), so gzip measures decompression
# of real-sized data, not of zeros.
head -c "$((size_mib * 1024 * 1024))" /dev/urandom >"$work/payload.bin"
for comp in none gzip zstd; do
  "$ef" artifact write module-image -T single-file -t bench -n bench-$comp --compression $comp \
    -f "$work/payload.bin" -o "$work/bench-$comp.mender" >/dev/null
done

# best CMD...: prints "best_seconds peak_rss_kib" over $runs runs.
best() {
  local best_s="" best_kb=0 line s kb
  cat "${@: -1}" >/dev/null 2>&1 || true # warm the page cache
  for _ in $(seq "$runs"); do
    line=$(/usr/bin/time -f '%e %M' "$@" 2>&1 >/dev/null | tail -1)
    s=${line% *}; kb=${line#* }
    if [ -z "$best_s" ] || awk -v a="$s" -v b="$best_s" 'BEGIN{exit !(a<b)}'; then best_s=$s; fi
    [ "$kb" -gt "$best_kb" ] && best_kb=$kb
  done
  echo "$best_s $best_kb"
}
row() { # row LABEL CMD...
  local label=$1; shift
  read -r s kb < <(best "$@")
  printf '%-44s %8.2f s %9.1f MiB\n' "$label" "$s" "$(awk -v k="$kb" 'BEGIN{print k/1024}')"
}

echo "# $(go version | awk '{print $3, $4}'), $(nproc) cores, payload ${size_mib} MiB, best of $runs, $(date -u +%Y-%m-%d)"
printf '%-44s %10s %13s\n' "command" "time" "peak RSS"
row "openssl dgst -sha256 (payload)" openssl dgst -sha256 "$work/payload.bin"
for comp in none gzip; do
  row "edgefort artifact validate ($comp)" "$ef" artifact validate "$work/bench-$comp.mender"
  row "mender-artifact validate ($comp)" mender-artifact validate "$work/bench-$comp.mender"
done
row "edgefort artifact validate (zstd)" "$ef" artifact validate "$work/bench-zstd.mender"
