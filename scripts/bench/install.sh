#!/usr/bin/env bash
# Install benchmark: a full offline `edgefort update install --commit` of
# an uncompressed module-image Artifact (stream it, verify the manifest and
# checksums, hand the payload through the v3 streaming FIFOs to an update
# module that writes and fsyncs it), side by side in one run with
#   cp PAYLOAD DEST && sync                (the bare write: the goal's peer)
#   cat PAYLOAD >FIFO; cat FIFO >DEST; sync DEST  (the module's pipe hop)
#   openssl dgst -sha256 PAYLOAD           (the SHA-256 floor)
#   edgefort artifact validate ARTIFACT    (stream + verify, no write)
#   mender install ARTIFACT                (Debian's Mender client 3.4, the same
#                                           Artifact through the same module, in a
#                                           private mount namespace; as root only)
# on one payload (default 1 GiB of random bytes), the module-image Artifact
# uncompressed and gzip. The update module is
# scripts/bench/install/bench-file (shell, Update Module v3): it copies
# each stream with cat to DEST/.NAME.tmp and fsyncs it during Download,
# renames it into place and fsyncs DEST in ArtifactInstall.
#
# Each of ROUNDS rounds (default 3) runs every command once, in a random order, with
# a fresh state directory and an empty DEST, after a global `sync` (outside
# the timing) so no command pays for another's dirty pages, and after COOL
# seconds idle (default 5). The pause matters on a VM that hands free memory
# back to its host (virtio free page reporting, as on the Firecracker VMs
# this was measured on): the page cache a command writes then costs host
# faults, and a command run right after another one's file was deleted
# gets that memory back warm instead, so without the pause the order of
# the commands decides a good part of their times. The page cache
# holds the payload and the Artifact throughout (they were just written);
# nothing is dropped. Reported: the median wall time, its ratio to
# cp + sync, and the highest peak RSS over the rounds (/usr/bin/time's %M:
# the largest process of the command's tree, so for the install it is
# max(edgefort, the module's sh and cat)).
#   SIZE_MB=1024 ROUNDS=3 scripts/bench/install.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
size_mb=${SIZE_MB:-1024}
rounds=${ROUNDS:-3}
cool=${COOL:-5}
command -v openssl >/dev/null || { echo "install.sh: openssl is required (apt-get install openssl)" >&2; exit 1; }
if [ ! -x /usr/bin/time ] && [ "$(id -u)" = 0 ]; then
  apt-get install -y -qq --no-install-recommends time >/dev/null || true
fi
have_time=false
[ -x /usr/bin/time ] && have_time=true

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -trimpath -ldflags='-s -w' -o "$work/edgefort" ./cmd/edgefort
ef="$work/edgefort"

# A payload that does not compress, and an uncompressed Artifact of it for
# the bench-file module.
head -c "$((size_mb * 1024 * 1024))" /dev/urandom >"$work/payload.bin"
"$ef" artifact write module-image -T bench-file -t bench-device -n bench-install \
  --compression none -f "$work/payload.bin" -o "$work/bench.mender" >/dev/null

# The same payload for the built-in streaming installer (edgefort-file):
# no module, no pipe; its meta-data names the destination.
printf '{"path": "%s/dest/payload.bin", "mode": "0644"}' "$work" >"$work/meta.json"
"$ef" artifact write module-image -T edgefort-file -t bench-device -n bench-install-builtin \
  --compression none -m "$work/meta.json" -f "$work/payload.bin" -o "$work/builtin.mender" >/dev/null
# The bench-file Artifact gzip-compressed too, for edgefort and Mender.
"$ef" artifact write module-image -T bench-file -t bench-device -n bench-install-gzip \
  --compression gzip -f "$work/payload.bin" -o "$work/install-gzip.mender" >/dev/null
# And compressed (random bytes do not shrink, so these measure the
# decompressor's pass over a real-sized stream).
for comp in gzip zstd; do
  "$ef" artifact write module-image -T edgefort-file -t bench-device -n bench-install-$comp \
    --compression $comp -m "$work/meta.json" -f "$work/payload.bin" -o "$work/builtin-$comp.mender" >/dev/null
done

mkdir -p "$work/dest"
cat >"$work/edgefort.yaml" <<YAML
version: 1
device:
  id: bench
  device_type: bench-device
state_dir: $work/state
log:
  level: warn
admin:
  socket: $work/state/admin.sock
metrics:
  enabled: false
updates:
  enabled: false
  modules_dir: $repo/scripts/bench/install
  scripts_dir: $work/scripts
YAML
mkdir -p "$work/scripts"
"$ef" config validate "$work/edgefort.yaml" >/dev/null
export BENCH_FILE_DEST="$work/dest"

# The Mender client 3.4 as a peer: standalone `mender install` in a private
# mount namespace, where the bench's modules directory is bound over
# /usr/share/mender/modules/v3 and a directory of its own over /etc/mender
# (artifact_info), so no system file changes. Its data directory is under
# $work/state, new for each run. Needs root (CAP_SYS_ADMIN) and mender.
have_mender=false
if [ "$(id -u)" = 0 ] && command -v mender >/dev/null && command -v unshare >/dev/null; then
  mkdir -p "$work/mender-etc"
  echo "artifact_name=bench-0" >"$work/mender-etc/artifact_info"
  cat >"$work/mender.conf" <<JSON
{"DeviceTypeFile": "$work/state/mender/device_type", "UpdateLogPath": "$work/state/mender", "DBus": {"Enabled": false}}
JSON
  have_mender=true
fi
mender_install() { # ARTIFACT
  mkdir -p "$work/state/mender" &&
    echo "device_type=bench-device" >"$work/state/mender/device_type" &&
    unshare -m sh -c 'mount --bind "$1" /etc/mender && mount --bind "$2" /usr/share/mender/modules/v3 && shift 2 && exec "$@"' \
      sh "$work/mender-etc" "$repo/scripts/bench/install" \
      mender -c "$work/mender.conf" -d "$work/state/mender" --no-syslog install "$1" >"$work/mender.log" 2>&1 ||
    { cat "$work/mender.log" >&2; return 1; }
}

# measure NAME CMD...: runs CMD once on a clean slate, appends "seconds
# rss_kib" to $work/NAME.
measure() {
  local name=$1 line s kb
  shift
  rm -rf "$work/state" "$work/dest"
  mkdir -p "$work/dest"
  sync
  sleep "$cool"
  if $have_time; then
    line=$(/usr/bin/time -f '%e %M' "$@" 2>&1 >/dev/null | tail -1)
  else
    line="$( { TIMEFORMAT=%R; time "$@" >/dev/null 2>&1; } 2>&1 | tail -1) 0"
  fi
  s=${line% *}; kb=${line#* }
  [[ $s =~ ^[0-9.]+$ && $kb =~ ^[0-9]+$ ]] || { echo "install.sh: $name failed: $line" >&2; exit 1; }
  echo "$s $kb" >>"$work/$name"
}
cp_sync() { cp "$work/payload.bin" "$work/dest/payload.bin" && sync; }
# The update module protocol's own cost without edgefort: the payload
# through a FIFO into cat, as bench-file gets it, then fsynced.
fifo_copy() {
  rm -f "$work/pipe.fifo" && mkfifo "$work/pipe.fifo"
  cat "$work/payload.bin" >"$work/pipe.fifo" &
  cat "$work/pipe.fifo" >"$work/dest/payload.bin" && wait $! && sync "$work/dest/payload.bin"
}
export -f cp_sync fifo_copy mender_install
export work repo

# run_one NAME: measures one command and checks what an install put in
# place.
installed() {
  cmp -s "$work/payload.bin" "$work/dest/payload.bin" || { echo "install.sh: $1: the installed file differs from the payload" >&2; exit 1; }
}
run_one() {
  case $1 in
  cp) measure cp bash -c cp_sync ;;
  fifo) measure fifo bash -c fifo_copy ;;
  openssl) measure openssl openssl dgst -sha256 "$work/payload.bin" ;;
  validate) measure validate "$ef" artifact validate "$work/bench.mender" ;;
  install)
    measure install "$ef" update install --commit --no-progress --config "$work/edgefort.yaml" "$work/bench.mender"
    installed install ;;
  builtin)
    measure builtin "$ef" update install --commit --no-progress --config "$work/edgefort.yaml" "$work/builtin.mender"
    installed builtin ;;
  install-gzip)
    measure install-gzip "$ef" update install --commit --no-progress --config "$work/edgefort.yaml" "$work/install-gzip.mender"
    installed install-gzip ;;
  mender)
    measure mender bash -c 'mender_install "$work/bench.mender"'
    installed mender ;;
  mender-gzip)
    measure mender-gzip bash -c 'mender_install "$work/install-gzip.mender"'
    installed mender-gzip ;;
  builtin-gzip | builtin-zstd)
    measure "$1" "$ef" update install --commit --no-progress --config "$work/edgefort.yaml" "$work/${1}.mender"
    installed "$1" ;;
  esac
}
# Each round runs the commands in a new random order: what ran just before
# a command changes its time on a VM (see COOL above), so no command keeps
# one position. edgefort's and Mender's installs of one Artifact run back
# to back, the two in a random order: on a machine shared with other work,
# whose load drifts over a round's minutes, their paired ratio then
# compares two runs seconds apart.
units=(cp fifo openssl validate builtin builtin-gzip builtin-zstd)
if $have_mender; then
  units+=("install mender" "install-gzip mender-gzip")
else
  units+=(install install-gzip)
fi
for _ in $(seq "$rounds"); do
  while IFS= read -r unit; do
    for name in $(shuf -e $unit); do
      run_one "$name"
    done
  done < <(printf '%s\n' "${units[@]}" | shuf)
done

median() { sort -n | awk '{a[NR]=$1} END{print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
base=$(cut -d' ' -f1 "$work/cp" | median)
echo "# $(go version | awk '{print $3, $4}'), $(nproc) cores, $(df -T "$work" | awk 'NR==2{print $2}') on $(df "$work" | awk 'NR==2{print $6}'), payload ${size_mb} MiB, median of $rounds, ${cool} s idle before each, $(date -u +%Y-%m-%d)"
printf '%-50s %10s %10s %10s %12s   %s\n' "command" "median" "vs cp+sync" "paired" "peak RSS" "each round (s)"
# paired: the median over the rounds of each round's time divided by the
# same round's cp + sync, which cancels the slow drifts of a virtual disk
# better than the ratio of the two medians.
row() { # row LABEL NAME
  local s kb rss paired
  s=$(cut -d' ' -f1 "$work/$2" | median)
  kb=$(cut -d' ' -f2 "$work/$2" | sort -n | tail -1)
  paired=$(paste -d' ' "$work/$2" "$work/cp" | awk '{print $1/$3}' | median)
  if $have_time; then rss=$(awk -v k="$kb" 'BEGIN{printf "%.1f MiB", k/1024}'); else rss="n/a"; fi
  printf '%-50s %8.2f s %9.2fx %9.2fx %12s   %s\n' "$1" "$s" "$(awk -v a="$s" -v b="$base" 'BEGIN{print a/b}')" "$paired" "$rss" "$(cut -d' ' -f1 "$work/$2" | tr '\n' ' ')"
}
row "cp + sync (payload)" cp
row "cat >FIFO, cat FIFO >dest + sync" fifo
row "openssl dgst -sha256 (payload)" openssl
row "edgefort artifact validate" validate
row "edgefort update install (bench-file module)" install
row "  the same, gzip Artifact" install-gzip
if $have_mender; then
  row "mender install (3.4, bench-file module)" mender
  row "  the same, gzip Artifact" mender-gzip
  for pair in "install mender" "install-gzip mender-gzip"; do
    set -- $pair
    echo "# edgefort / Mender ($1): $(awk -v a="$(cut -d' ' -f1 "$work/$1" | median)" -v b="$(cut -d' ' -f1 "$work/$2" | median)" 'BEGIN{printf "%.2f", a/b}')x (paired: $(paste -d' ' "$work/$1" "$work/$2" | awk '{print $1/$3}' | median)x; each round: $(paste -d' ' "$work/$1" "$work/$2" | awk '{printf "%.2f ", $1/$3}'))"
  done
else
  echo "# the Mender client was not measured: needs root, mender and unshare"
fi
row "edgefort update install (built-in edgefort-file)" builtin
row "  the same, gzip Artifact" builtin-gzip
row "  the same, zstd Artifact" builtin-zstd
$have_time || echo "# /usr/bin/time is missing: peak RSS not measured"
