#!/usr/bin/env bash
# Packages one edgefort binary as a .deb and an .rpm with nfpm (pinned in
# packaging/tools/go.mod), and prints the two paths. scripts/release.sh
# calls it for each architecture; tests call it on a binary of their own.
#
#   VERSION=1.2.3 packaging/package.sh BINARY ARCH OUTDIR
#
# Environment: VERSION (required); COMMIT (for the changelog entry,
# default: unknown); SOURCE_DATE_EPOCH (file times and dates, default now);
# MANPAGE, an edgefort.1 already generated (default: generated here by
# running BINARY, which must then run on this machine).
set -euo pipefail
die() { echo "package.sh: $*" >&2; exit 1; }

[ $# = 3 ] || die "usage: VERSION=V package.sh BINARY ARCH OUTDIR"
bin=$(realpath "$1") arch=$2 out=$3
[ -n "${VERSION:-}" ] || die "VERSION is required"
[ -x "$bin" ] || die "$bin: not an executable"
case "$arch" in amd64 | arm64) ;; *) die "ARCH $arch: want amd64 or arm64" ;; esac
src=$(cd "$(dirname "$0")/.." && pwd)
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(date +%s)}
mkdir -p "$out"
out=$(cd "$out" && pwd)

stage=$(mktemp -d "${TMPDIR:-/tmp}/edgefort-package.XXXXXX")
trap 'rm -rf "$stage"' EXIT
# The source files nfpm.yaml names, in the same layout.
(cd "$src" && cp --parents -r README.md agent/config/example.yaml packaging "$stage/")
mkdir "$stage/build"
cp "$bin" "$stage/build/edgefort"
if [ -n "${MANPAGE:-}" ]; then
  cp "$MANPAGE" "$stage/build/edgefort.1"
else
  (cd "$src" && go run ./packaging/manpage -version "$VERSION" "$bin") >"$stage/build/edgefort.1"
fi
# -n: no name or time in the gzip header, so the page is reproducible.
gzip -9n "$stage/build/edgefort.1"
# One entry, the release itself: Debian wants a changelog.Debian.gz in a
# non-native package; the history is in git.
cat >"$stage/build/changelog.Debian" <<TEXT
edgefort ($VERSION-1) stable; urgency=medium

  * edgefort $VERSION, built from commit
    ${COMMIT:-unknown}.
  * The changes are in the project's git history.

 -- edgefort maintainers <maintainers@edgefort.invalid>  $(date -u -R -d "@$SOURCE_DATE_EPOCH")
TEXT
gzip -9n "$stage/build/changelog.Debian"
# The tree's files keep the modes git gave them; nfpm.yaml sets each
# file's mode in the package.
# nfpm is built, not `go tool`-run: go -C would run it in packaging/tools,
# and nfpm reads the paths in nfpm.yaml from its working directory.
go -C "$src/packaging/tools" build -o "$stage/nfpm" github.com/goreleaser/nfpm/v2/cmd/nfpm
for packager in deb rpm; do
  (cd "$stage" && ARCH=$arch VERSION=$VERSION ./nfpm package \
    --config packaging/nfpm.yaml --packager "$packager" --target "$out/" >&2) ||
    die "nfpm $packager for $arch failed"
done
ls "$out"/edgefort_"${VERSION}"*_"$arch".deb "$out"/edgefort-"${VERSION}"*."$( [ "$arch" = amd64 ] && echo x86_64 || echo aarch64)".rpm
