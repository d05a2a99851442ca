#!/usr/bin/env bash
# The release build (packaging/README.md): static, stripped binaries of one
# commit for linux/amd64 and linux/arm64, proven reproducible, and the .deb
# and .rpm packages of each, with SHA256SUMS beside them in dist/.
#
#   scripts/release.sh [COMMIT]          # default HEAD; uncommitted changes are not built
#
# Environment:
#   VERSION   the version to stamp; default: the tag vX.Y.Z on COMMIT without
#             its "v", else 0.0.0~gitYYYYMMDDHHMMSS.<commit> (sorts before 0.0.0)
#   ARCHS     default "amd64 arm64"
#   DIST      output directory, default dist (gitignored)
#   PACKAGES  0: binaries only, no .deb/.rpm
#
# Reproducibility is checked, not assumed: each binary is built twice from
# `git archive` of COMMIT unpacked in two different directories, the
# second time with an empty build cache, and the two must be byte-identical.
# SOURCE_DATE_EPOCH is the commit's time, so nothing depends on when or
# where the build ran. The arm64 binary then runs `edgefort version` under
# qemu-user-static, the amd64 one natively.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

die() { echo "release.sh: $*" >&2; exit 1; }
log() { printf '== %s\n' "$*" >&2; }

commit=$(git rev-parse --verify "${1:-HEAD}^{commit}") || die "not a commit: ${1:-HEAD}"
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct "$commit")
export SOURCE_DATE_EPOCH
date=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
if [ -z "${VERSION:-}" ]; then
  if tag=$(git describe --tags --exact-match --match 'v[0-9]*' "$commit" 2>/dev/null); then
    VERSION=${tag#v}
  else
    VERSION=0.0.0~git$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y%m%d%H%M%S).${commit:0:12}
  fi
fi
# Debian and RPM both accept this alphabet; a version outside it would be
# mangled differently by each.
[[ $VERSION =~ ^[0-9][0-9A-Za-z.~+]*$ ]] || die "VERSION $VERSION: want a digit, then digits, letters, '.', '~' or '+'"
ARCHS=${ARCHS:-amd64 arm64}
DIST=${DIST:-dist}
mkdir -p "$DIST"
DIST=$(cd "$DIST" && pwd)

work=$(mktemp -d "${TMPDIR:-/tmp}/edgefort-release.XXXXXX")
trap 'rm -rf "$work"' EXIT
for tree in a b-elsewhere; do
  mkdir -p "$work/$tree"
  git archive "$commit" | tar -x -C "$work/$tree"
done

ldflags="-s -w -buildid="
for kv in "version=$VERSION" "commit=$commit" "date=$date"; do
  ldflags="$ldflags -X github.com/edgefort/edgefort/agent.$kv"
done

# build TREE ARCH OUT [GOCACHE]
build() {
  (
    cd "$1"
    export CGO_ENABLED=0 GOOS=linux GOARCH=$2 GOFLAGS="-buildvcs=false -mod=readonly" GOTOOLCHAIN=local
    [ -n "${4:-}" ] && export GOCACHE=$4
    go build -trimpath -ldflags "$ldflags" -o "$3" ./cmd/edgefort
  )
}

log "edgefort $VERSION, commit $commit ($date)"
for arch in $ARCHS; do
  out=$DIST/edgefort-linux-$arch
  log "build linux/$arch twice (second: other directory, empty build cache)"
  build "$work/a" "$arch" "$out"
  mkdir -p "$work/cache"
  build "$work/b-elsewhere" "$arch" "$work/edgefort-$arch.2" "$work/cache"
  cmp "$out" "$work/edgefort-$arch.2" || die "linux/$arch: two builds of $commit differ; the release is not reproducible"
  log "linux/$arch reproducible: $(stat -c %s "$out") bytes, sha256 $(sha256sum "$out" | cut -d' ' -f1)"

  case "$arch" in
    "$(go env GOHOSTARCH)") runner=() ;;
    arm64) runner=(qemu-aarch64-static) ;;
    amd64) runner=(qemu-x86_64-static) ;;
    *) die "no way to run a linux/$arch binary here" ;;
  esac
  [ ${#runner[@]} = 0 ] || command -v "${runner[0]}" >/dev/null || die "${runner[0]} missing (Debian qemu-user-static) to run the linux/$arch binary"
  got=$("${runner[@]}" "$out" version) || die "linux/$arch: edgefort version failed"
  for want in "edgefort $VERSION" "commit $commit" "date $date" "linux/$arch"; do
    grep -qxF -- "$want" <<<"$got" || grep -qF -- "$want" <<<"$got" || die "linux/$arch: edgefort version lacks \"$want\":
$got"
  done
  log "linux/$arch runs: $(tr '\n' ' ' <<<"$got")"
done

if [ "${PACKAGES:-1}" != 0 ]; then
  for arch in $ARCHS; do
    VERSION=$VERSION "$work/a/packaging/package.sh" "$DIST/edgefort-linux-$arch" "$arch" "$DIST"
  done
fi

(cd "$DIST" && rm -f SHA256SUMS && sha256sum -- * >SHA256SUMS.tmp && mv SHA256SUMS.tmp SHA256SUMS)
log "outputs in ${DIST#"$repo"/}:"
(cd "$DIST" && ls -l -- * >&2)
