#!/bin/sh
# Regenerates the golden Artifacts in this directory with Debian's
# mender-artifact 3.9 and openssl. Keys are made fresh; only the public
# halves are kept. Afterwards run
#   go test ./updater/artifact -run TestGolden -update
# to rewrite the .golden.json files, and review the diff.
set -eu
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out "$tmp/rsa.p8.pem" 2>/dev/null
openssl rsa -in "$tmp/rsa.p8.pem" -traditional -out "$tmp/rsa.pem" 2>/dev/null
openssl rsa -in "$tmp/rsa.pem" -pubout -out rsa.pub.pem 2>/dev/null
openssl ecparam -genkey -name prime256v1 -noout -out "$tmp/ec.pem"
openssl ec -in "$tmp/ec.pem" -pubout -out ec.pub.pem 2>/dev/null

printf 'hello\n' > inputs/p1.txt
seq 1 2000 > inputs/p2.bin
seq 100000 101500 > inputs/rootfs.img
printf '#!/bin/sh\necho install\n' > inputs/ArtifactInstall_Enter_00
printf '#!/bin/sh\necho committed\n' > inputs/ArtifactCommit_Leave_50_report
printf '{"dest_dir":"/opt/app","mode":"0644","tags":["a","b"]}' > inputs/meta.json

ma() { mender-artifact "$@" >/dev/null; }
ma write module-image -T single-file -t edge-1 -t edge-2 -n module-v1 \
    -f inputs/p1.txt -f inputs/p2.bin -m inputs/meta.json \
    -p rootfs-image.single-file.version:1.0 -d hw:rev-b \
    -s inputs/ArtifactInstall_Enter_00 -s inputs/ArtifactCommit_Leave_50_report \
    -k "$tmp/ec.pem" -o module-ecdsa.mender
ma write rootfs-image -t edge-1 -n rootfs-v1 -f inputs/rootfs.img --compression lzma \
    -k "$tmp/rsa.pem" --no-progress -o rootfs-rsa-lzma.mender
ma write module-image -T dir-overlay -t edge-1 -n groups-v2 -N groups-v1 -G grp-a -g grp-b \
    -f inputs/p1.txt --compression none -o module-none-groups.mender
ma write module-image -T dir-overlay -t edge-1 -n aug-v2 -f inputs/p1.txt \
    --augment-type dir-overlay --augment-file inputs/p2.bin --augment-meta-data inputs/meta.json \
    --augment-depends base:v1 -k "$tmp/rsa.pem" -o augmented.mender
ma write bootstrap-artifact -t edge-1 -n boot-1 -p rootfs-image.version:boot-1 -o bootstrap.mender
