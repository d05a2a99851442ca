#!/usr/bin/env bash
# rootfs-image install benchmark (#17): a SIZE_MB (default 1024) image of
# random bytes, in a rootfs-image Artifact written by mender-artifact
# (uncompressed, and gzip), installed into the inactive partition of a
# simulated A/B device up to the point where the boot environment says to
# boot it on trial, side by side in one run with
#   dd if=IMAGE of=PARTITION conv=notrunc && sync   (the bare write: the goal's peer)
#   mender install ARTIFACT                         (Debian's Mender client 3.4, its built-in rootfs-image)
#   go run ./scripts/bench/rootfs                   (edgefort's installer and state machine)
# The partitions are loop devices over preallocated files (Mender refuses
# anything but a block device), under device nodes named part2 and part3;
# the boot environment is U-Boot's, in a file, through fw_printenv and
# fw_setenv shims (Debian's libubootenv skips Mender's "name value" script
# lines, so the shim rewrites them); Mender learns the running root from a
# `mount` shim, edgefort from a mountinfo file. Mender runs in a private
# mount namespace with its own /etc/mender. Needs root.
#
# Each of ROUNDS rounds (default 3) runs every command once, in a random
# order, after the environment is reset, a global `sync` and COOL seconds
# idle (default 5; see install.sh for why). Reported: the median wall
# time, its ratio to dd + sync, and the highest peak RSS over the rounds
# (/usr/bin/time's %M).
#   SIZE_MB=1024 ROUNDS=3 scripts/bench/rootfs.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
size_mb=${SIZE_MB:-1024}
rounds=${ROUNDS:-3}
cool=${COOL:-5}
[ "$(id -u)" = 0 ] || { echo "rootfs.sh: needs root (loop devices, mount namespaces)" >&2; exit 1; }
for c in losetup mender mender-artifact fw_setenv fw_printenv unshare /usr/bin/time; do
  command -v "$c" >/dev/null || { echo "rootfs.sh: $c is required" >&2; exit 1; }
done

work=$(mktemp -d)
loops=()
cleanup() {
  for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
go build -trimpath -ldflags='-s -w' -o "$work/rootfs" ./scripts/bench/rootfs

head -c "$((size_mb * 1024 * 1024))" /dev/urandom >"$work/rootfs.img"
for comp in none gzip; do
  mender-artifact write rootfs-image -t bench-device -n bench-rootfs -f "$work/rootfs.img" \
    --compression $comp --no-progress -o "$work/$comp.mender" >/dev/null
done

# The partitions: 16 MiB larger than the image.
for n in 2 3; do
  fallocate -l "$(((size_mb + 16) * 1024 * 1024))" "$work/img$n"
  loop=$(losetup -f --show "$work/img$n")
  loops+=("$loop")
  read -r major minor < <(stat -c '%t %T' "$loop")
  mknod "$work/part$n" b "$((16#$major))" "$((16#$minor))"
done

# The U-Boot environment and the shims.
mkdir -p "$work/shims" "$work/etc"
truncate -s 16K "$work/uboot.env"
echo "$work/uboot.env 0x0000 0x4000" >"$work/fw_env.config"
: >"$work/default-env"
cat >"$work/shims/fw_printenv" <<SH
#!/bin/sh
exec $(command -v fw_printenv) -c '$work/fw_env.config' "\$@"
SH
cat >"$work/shims/fw_setenv" <<SH
#!/bin/sh
if [ "\$1" = -s ]; then
  sed 's/^\([^ =]*\) /\1=/' | $(command -v fw_setenv) -c '$work/fw_env.config' -s -
  exit \$?
fi
exec $(command -v fw_setenv) -c '$work/fw_env.config' "\$@"
SH
printf '#!/bin/sh\necho "%s/part2 on / type ext4 (rw,relatime)"\n' "$work" >"$work/shims/mount"
chmod +x "$work/shims/"*
printf '22 1 259:2 / / rw,relatime shared:1 - ext4 %s/part2 rw\n' "$work" >"$work/mountinfo"
printf 'root=%s/part2 rootwait\n' "$work" >"$work/cmdline"

echo "artifact_name=bench-0" >"$work/etc/artifact_info"
cat >"$work/mender.conf" <<JSON
{"DeviceTypeFile": "$work/data/device_type", "UpdateLogPath": "$work/data", "DBus": {"Enabled": false},
 "RootfsPartA": "$work/part2", "RootfsPartB": "$work/part3"}
JSON

reset() {
  printf 'mender_boot_part=2\nmender_boot_part_hex=2\nupgrade_available=0\nbootcount=0\n' |
    fw_setenv -c "$work/fw_env.config" -f "$work/default-env" -s -
  rm -rf "$work/state" "$work/data"
  mkdir -p "$work/data"
  echo "device_type=bench-device" >"$work/data/device_type"
  sync
  sleep "$cool"
}

cmd_for() {
  case $1 in
    dd) echo "sh -c 'dd if=$work/rootfs.img of=$work/part3 bs=1M conv=notrunc status=none && sync'" ;;
    edgefort-none | edgefort-gzip)
      echo "$work/rootfs -artifact $work/${1#edgefort-}.mender -part-a $work/part2 -part-b $work/part3 -mountinfo $work/mountinfo -cmdline $work/cmdline -fw-printenv $work/shims/fw_printenv -fw-setenv $work/shims/fw_setenv -state $work/state" ;;
    mender-none | mender-gzip)
      echo "unshare -m sh -c 'mount --bind $work/etc /etc/mender && PATH=$work/shims:\$PATH exec mender -c $work/mender.conf -d $work/data --no-syslog install $work/${1#mender-}.mender'" ;;
  esac
}

check() { # the inactive partition holds the image, and the environment boots it on trial
  cmp -s -n "$((size_mb * 1024 * 1024))" "$work/rootfs.img" "$work/part3" || { echo "rootfs.sh: $1 left part3 without the image" >&2; exit 1; }
  [ "$1" = dd ] && return
  fw_printenv -c "$work/fw_env.config" upgrade_available | grep -qx 'upgrade_available=1' ||
    { echo "rootfs.sh: $1 did not set upgrade_available=1" >&2; exit 1; }
}

names=(dd edgefort-none edgefort-gzip mender-none mender-gzip)
declare -A times rss
for round in $(seq "$rounds"); do
  for name in $(printf '%s\n' "${names[@]}" | shuf); do
    dd if=/dev/zero of="$work/part3" bs=1M count=16 conv=notrunc status=none # not the image at the start
    reset
    /usr/bin/time -f '%e %M' -o "$work/time" sh -c "$(cmd_for "$name")" >"$work/out" 2>&1 ||
      { echo "rootfs.sh: $name failed:" >&2; cat "$work/out" >&2; exit 1; }
    check "$name"
    read -r secs kb <"$work/time"
    times[$name]="${times[$name]:-} $secs"
    [ "${rss[$name]:-0}" -ge "$kb" ] || rss[$name]=$kb
    echo "round $round: $name ${secs}s, ${kb} KiB" >&2
  done
done

median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
base=$(echo "${times[dd]}" | median)
printf '%-16s %10s %8s %10s\n' command median_s vs_dd peak_MiB
for name in "${names[@]}"; do
  m=$(echo "${times[$name]}" | median)
  printf '%-16s %10.2f %8.2f %10.1f\n' "$name" "$m" "$(echo "$m / $base" | bc -l)" "$(echo "${rss[$name]} / 1024" | bc -l)"
done
