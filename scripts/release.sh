#!/usr/bin/env bash
# The release build (packaging/README.md): stripped binaries of one commit
# for linux/amd64 and linux/arm64, proven reproducible, and the .deb and
# .rpm packages of each, with SHA256SUMS beside them in dist/.
#
# Two builds of each architecture, both CGO_ENABLED=0, -trimpath, stripped
# and stamped alike: the static binary (dist/edgefort-linux-ARCH), the
# appliance binary that the agent's own Mender Artifact carries, and a
# position-independent one (-buildmode=pie: ASLR for the network-facing
# agent, and what lintian and distributions expect of a packaged binary),
# which the .deb and .rpm carry. Why each where: packaging/README.md.
#
#   scripts/release.sh [COMMIT]          # default HEAD; uncommitted changes are not built
#
# Environment:
#   VERSION   the version to stamp; default: the tag vX.Y.Z on COMMIT without
#             its "v", else 0.0.0~gitYYYYMMDDHHMMSS.<commit> (sorts before 0.0.0)
#   ARCHS     default "amd64 arm64"
#   DIST      output directory, default dist (gitignored)
#   PACKAGES  0: the static binaries only, no PIE build, no .deb/.rpm
#   DEVICE_TYPES_amd64, DEVICE_TYPES_arm64
#             device types (space-separated) the agent's Mender Artifact
#             for that architecture is for; unset: no Artifact
#   ARTIFACT_KEY  PEM private key (RSA or ECDSA P-256) signing the Artifacts
#
# Reproducibility is checked, not assumed: each binary (static and PIE) is
# built twice from `git archive` of COMMIT unpacked in two different
# directories, the second time with an empty build cache, and the two must
# be byte-identical. SOURCE_DATE_EPOCH is the commit's time, so nothing
# depends on when or where the build ran. The packages are made twice as
# well and compared. Each binary's ELF type is checked (static: ET_EXEC,
# PIE: ET_DYN), and each runs `edgefort version`: natively, or the arm64
# ones under qemu-user-static (the arm64 PIE with the arm64 C library's
# loader, Debian libc6-arm64-cross, which a PIE needs to start).
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

# build TREE ARCH MODE OUT [GOCACHE]; MODE is exe (static) or pie.
build() {
  (
    cd "$1"
    export CGO_ENABLED=0 GOOS=linux GOARCH=$2 GOFLAGS="-buildvcs=false -mod=readonly" GOTOOLCHAIN=local
    [ -n "${5:-}" ] && export GOCACHE=$5
    go build -trimpath -buildmode="$3" -ldflags "$ldflags" -o "$4" ./cmd/edgefort
  )
}

# release_binary ARCH MODE OUT: builds OUT twice and compares, checks its
# ELF type (e_type at offset 16: 2 ET_EXEC, a static executable; 3 ET_DYN,
# a PIE) and runs its `edgefort version`.
release_binary() {
  local arch=$1 mode=$2 out=$3 what="linux/$1 $2" etype want runner
  log "build $what twice (second: other directory, empty build cache)"
  build "$work/a" "$arch" "$mode" "$out"
  mkdir -p "$work/cache"
  build "$work/b-elsewhere" "$arch" "$mode" "$work/edgefort-$arch-$mode.2" "$work/cache"
  cmp "$out" "$work/edgefort-$arch-$mode.2" || die "$what: two builds of $commit differ; the release is not reproducible"
  log "$what reproducible: $(stat -c %s "$out") bytes, sha256 $(sha256sum "$out" | cut -d' ' -f1)"

  etype=$(od -An -tu2 -j16 -N2 "$out" | tr -d ' ')
  want=$([ "$mode" = pie ] && echo 3 || echo 2)
  [ "$etype" = "$want" ] || die "$what: ELF type $etype, want $want (2 static executable, 3 PIE)"

  case "$arch" in
    "$(go env GOHOSTARCH)") runner=() ;;
    arm64) runner=(qemu-aarch64-static) ;;
    amd64) runner=(qemu-x86_64-static) ;;
    *) die "no way to run a linux/$arch binary here" ;;
  esac
  if [ ${#runner[@]} != 0 ]; then
    command -v "${runner[0]}" >/dev/null || die "${runner[0]} missing (Debian qemu-user-static) to run the linux/$arch binary"
    if [ "$mode" = pie ]; then
      # A PIE starts through the C library's loader (PT_INTERP), which a
      # foreign architecture's binary finds under qemu's -L prefix.
      case "$arch" in
        arm64) runner+=(-L /usr/aarch64-linux-gnu) ;;
        amd64) runner+=(-L /usr/x86_64-linux-gnu) ;;
      esac
      [ -e "${runner[2]}/lib" ] || die "${runner[2]}/lib missing: the linux/$arch loader a PIE needs (Debian libc6-$arch-cross)"
    fi
  fi
  got=$("${runner[@]}" "$out" version) || die "$what: edgefort version failed"
  for want in "edgefort $VERSION" "commit $commit" "date $date" "linux/$arch"; do
    grep -qF -- "$want" <<<"$got" || die "$what: edgefort version lacks \"$want\":
$got"
  done
  log "$what runs: $(tr '\n' ' ' <<<"$got")"
}

log "edgefort $VERSION, commit $commit ($date)"
if [ -z "${1:-}" ] && [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  log "note: the work tree has uncommitted changes; they are not in this release (it builds $commit)"
fi
mkdir -p "$work/pie"
for arch in $ARCHS; do
  release_binary "$arch" exe "$DIST/edgefort-linux-$arch"
  # The packages' binary: not published apart, the .deb and .rpm carry it.
  [ "${PACKAGES:-1}" = 0 ] || release_binary "$arch" pie "$work/pie/edgefort-linux-$arch"
done

# host_binary prints the path of this release's binary for this machine,
# built apart when ARCHS lacks this machine's architecture.
host_binary() {
  local host
  host=$(go env GOHOSTARCH)
  if [[ " $ARCHS " == *" $host "* ]]; then
    echo "$DIST/edgefort-linux-$host"
    return
  fi
  [ -x "$work/edgefort-$host" ] || build "$work/a" "$host" exe "$work/edgefort-$host" >&2
  echo "$work/edgefort-$host"
}

outputs=()
for arch in $ARCHS; do outputs+=("edgefort-linux-$arch"); done
if [ "${PACKAGES:-1}" != 0 ]; then
  # One man page for all: generated by running this machine's binary.
  (cd "$work/a" && go run ./packaging/manpage -version "$VERSION" "$(host_binary)") >"$work/edgefort.1"
  # Packaged twice, from the two trees, and compared like the binaries;
  # the packages carry the PIE build.
  package() {
    MANPAGE=$work/edgefort.1 COMMIT=$commit VERSION=$VERSION \
      "$work/$1/packaging/package.sh" "$work/pie/edgefort-linux-$2" "$2" "$3"
  }
  for arch in $ARCHS; do
    while read -r pkg; do
      outputs+=("$(basename "$pkg")")
    done < <(package a "$arch" "$DIST")
    while read -r pkg; do
      cmp "$pkg" "$DIST/$(basename "$pkg")" || die "$(basename "$pkg"): two packagings differ; the package is not reproducible"
    done < <(package b-elsewhere "$arch" "$work/pkg-$arch")
    log "linux/$arch packages reproducible"
  done
fi

# The agent's own Mender Artifact per architecture (payload type
# edgefort-agent, for appliances; a .deb/.rpm node updates through its
# package instead), when the device types it is for are given. Written by
# edgefort's own writer (the host binary), signed with ARTIFACT_KEY when
# set, and checked by edgefort artifact validate. Not part of the
# reproducibility check: the writer stamps the time of writing.
for arch in $ARCHS; do
  types_var=DEVICE_TYPES_$arch
  [ -n "${!types_var:-}" ] || continue
  hostbin=$(host_binary)
  mkdir -p "$work/artifact-$arch"
  cp "$DIST/edgefort-linux-$arch" "$work/artifact-$arch/edgefort"
  args=(-T edgefort-agent -n "edgefort-$VERSION" -f "$work/artifact-$arch/edgefort"
    -o "$DIST/edgefort-$VERSION-linux-$arch.mender")
  for t in ${!types_var}; do args+=(-t "$t"); done
  [ -z "${ARTIFACT_KEY:-}" ] || args+=(-k "$ARTIFACT_KEY")
  "$hostbin" artifact write module-image "${args[@]}" >&2
  "$hostbin" artifact validate "$DIST/edgefort-$VERSION-linux-$arch.mender" >&2
  outputs+=("edgefort-$VERSION-linux-$arch.mender")
done

# The checksums of this release's files only: dist/ may hold others.
(cd "$DIST" && sha256sum -- "${outputs[@]}" >SHA256SUMS.tmp && mv SHA256SUMS.tmp SHA256SUMS)
log "outputs in ${DIST#"$repo"/}:"
(cd "$DIST" && ls -l -- "${outputs[@]}" SHA256SUMS >&2)
