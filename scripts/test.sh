#!/usr/bin/env bash
# The test command (README): installs what the tests need on a fresh Debian
# machine, then runs the format check, go vet, the race-enabled test suite
# and the demo. CI runs it through .ci/run with EDGEFORT_REQUIRE_PEERS=1, so
# a test whose real peer is missing fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

# need CMD PACKAGE: install a Debian package when its command is missing.
apt_updated=""
need() {
  command -v "$1" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "test.sh: $1 is missing; install the Debian package $2" >&2
    return 1
  fi
  if [ -z "$apt_updated" ]; then
    apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null
}

log "tools"
command -v go >/dev/null || { echo "test.sh: Go is required (https://go.dev/dl/)" >&2; exit 1; }
need curl curl
need xz xz-utils        # liblzma's own xz streams (artifact reader bounds test)
need openssl openssl   # independent TLS peer (keystore tests, demo)
need node nodejs       # npm "jose": independent JOSE implementation (keystore, clientapi/jwtauth tests);
                       # npm "oidc-provider": a certified OpenID provider (clientapi/oidcauth, clientapi); both npm ci by the tests
need npm npm                           # also runs the dev IdPs (npm samlify, oidc-provider) of edgefort-dev and the demo
need chromium chromium                 # headless browser end to end (devcloud/devstack), driven by npm playwright-core
need mender-artifact mender-artifact   # the real Mender Artifact tool (artifact interop tests)
need mender mender-client              # the real Mender client 3.4 against devcloud's update server
need grub-editenv grub-common          # GRUB's own environment tool (updater/bootenv, rootfs A/B)
need fw_setenv libubootenv-tool        # U-Boot's fw_printenv/fw_setenv (updater/bootenv, rootfs A/B)
need strace strace                     # the rootfs install's order of writes and syncs (updater/deploy)
need losetup mount                     # loop devices: block-device partitions for the Mender client's rootfs installer
PATH="$PATH:/usr/sbin"                 # Debian installs mosquitto there
need mosquitto mosquitto               # a real MQTT broker (iot link soak, kill -9, benchmark)
need nginx nginx                       # a real backend behind the client API (request framing tests)
need haproxy haproxy                   # a real proxy in front of the client API (request framing tests)
# packaging/ tests: lintian and rpm judge the .deb and .rpm; mmdebstrap
# builds the throwaway Debian root they are installed into (from Debian's
# mirror, ~40 s); qemu runs the arm64 release binary.
need lintian lintian
need rpm rpm
need mmdebstrap mmdebstrap
need qemu-aarch64-static qemu-user-static
need /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 libc6-arm64-cross  # the loader the arm64 PIE starts through under qemu (release.sh)
need systemd-nspawn systemd-container  # boots that root to run the unit under a real systemd
need file file
go version

log "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:" >&2
  echo "$unformatted" >&2
  exit 1
fi

log "go vet"
go vet ./...

log "go test -race"
# -json through scripts/testsummary: the output of plain go test, then every
# skipped test and its reason, which plain go test hides; with
# EDGEFORT_REQUIRE_PEERS=1 a skipped peer test fails the run.
go build -o "${TMPDIR:-/tmp}/edgefort-testsummary" ./scripts/testsummary
go test -race -timeout 20m -json ./... | "${TMPDIR:-/tmp}/edgefort-testsummary"

log "fuzz the parsers briefly"
# Each target runs for a few seconds on top of its seed corpus; a crash
# fails the run and leaves the input under testdata/fuzz/ to commit.
# -fuzzminimizetime 0: Go minimizes every new interesting input for up to
# 60 s by default, so in a run of seconds the first one took all of it
# (6-19 executions in 8 s for FuzzReadArtifact and FuzzParseHeader; with
# no minimizing, ~50,000). A crasher is then saved as found, unminimized.
# The budget is a count of executions, not a duration: with a duration,
# Go's fuzz coordinator (go1.26; go.dev/issue/75804, fixed in 1.27) can
# report "context deadline exceeded" as a failure when the time runs out
# while a worker is mid-input, which failed CI once with no crasher.
# 30,000 inputs take 3-8 s per target on the 2-core CI machine.
# One "package target" pair a line; scripts/layers TestEveryFuzzTargetInCI
# fails when a product package's fuzz target is missing here.
while read -r pkg target; do
  go test -run '^$' -fuzz "^${target}\$" -fuzztime "${EDGEFORT_FUZZTIME:-30000x}" -fuzzminimizetime 0 "$pkg" </dev/null
done <<'EOF'
./updater/artifact/ FuzzReadArtifact
./updater/artifact/ FuzzParseHeader
./updater/artifact/ FuzzParseManifest
./updater/artifact/ FuzzXZBlocks
./agent/config/ FuzzParse
./clientapi/headerauth/ FuzzAuthenticate
./updater/ FuzzParseDeployment
./internal/retryafter/ FuzzParse
./clientapi/jwtauth/ FuzzAuthenticate
./clientapi/ FuzzClientAddr
./clientapi/ FuzzAuthenticateRequest
./clientapi/session/ FuzzSessionInputs
./clientapi/authapi/ FuzzAuthAPI
./updater/rootfs/ FuzzRunningFiles
./updater/bootenv/ FuzzParseGRUBBlock
./updater/ FuzzCheckContentRange
./cloudclient/ FuzzParseCertificates
./clientapi/jwtauth/ FuzzCheckKeys
./keystore/ FuzzParseKeyPEM
./keystore/ FuzzParseCertsPEM
./keystore/ FuzzDecryptJWE
./iot/events/ FuzzParse
./iot/sigv4/ FuzzVerify
EOF

log "demo"
bash scripts/demo.sh

log "all checks passed"
