#!/usr/bin/env bash
# scripts/demo.sh [SOURCE] - the main job: build smmapfs, mount a generated
# demo tree (or SOURCE, read-only) with small limits, read it with standard
# tools and fio, show the daemon's statistics and descriptors, unmount.
# Installs what is missing; idempotent; never writes to SOURCE.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[ $# -le 1 ] || die "usage: $0 [SOURCE]"
ensure_packages "${BUILD_PACKAGES[@]}" fio attr coreutils tar
ensure_build build
BIN="$TOP/build/src/fs/smmapfs"
[ -e /dev/fuse ] || die "/dev/fuse is missing: this machine cannot mount FUSE"

work=$(mktemp -d /tmp/smmapfs-demo.XXXXXX)
mnt="$work/mnt"
mkdir -p "$mnt"
pid=

cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -u -z "$mnt" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

section() { printf '\n\033[1m--- %s\033[0m\n' "$*"; }

generate() {
	local s=$1
	say "generating a demo tree in $s"
	mkdir -p "$s/tree" "$s/links" "$s/names"
	head -c $((256 << 20)) /dev/urandom >"$s/big.bin"
	head -c $((3 << 20)) /dev/urandom >"$s/medium.bin"
	: >"$s/empty"
	for d in $(seq -w 0 15); do
		mkdir -p "$s/tree/d$d"
		head -c $((128 * 4096)) /dev/urandom |
			split -b 4096 -a 3 - "$s/tree/d$d/f"
	done
	ln -s ../medium.bin "$s/links/relative"
	ln -s /etc/hostname "$s/links/absolute"
	ln -s nowhere "$s/links/dangling"
	ln "$s/medium.bin" "$s/links/hard"
	echo "grüße" >"$s/names/ünïcödé name.txt"
	setfattr -n user.demo -v "an extended attribute" "$s/medium.bin"
}

if [ $# -eq 1 ]; then
	src=$(realpath "$1")
	[ -d "$src" ] || die "SOURCE '$1' is not a directory"
else
	src="$work/src"
	generate "$src"
fi

opts="window_size=1M,max_mapped=64M,max_handles=64,max_fds=4"
section "mount: smmapfs -o $opts $src $mnt"
"$BIN" -f -o "$opts" "$src" "$mnt" 2>"$work/daemon.log" &
pid=$!
for _ in $(seq 100); do
	grep -q " $mnt " /proc/self/mountinfo && break
	kill -0 "$pid" 2>/dev/null || { cat "$work/daemon.log"; die "smmapfs exited"; }
	sleep 0.1
done
grep " $mnt " /proc/mounts

section "ls -la (first lines)"
ls -la "$mnt" | head -12

section "find: entries in SOURCE and in the mount"
n_src=$(find "$src" | wc -l)
n_mnt=$(find "$mnt" | wc -l)
echo "SOURCE $n_src, mount $n_mnt"
[ "$n_src" = "$n_mnt" ] || die "entry counts differ"

section "sha256sum of up to 500 files: SOURCE vs mount"
(cd "$src" && find . -type f -readable -print0 | sort -z | head -z -n 500 |
	xargs -0 -r sha256sum) >"$work/sum.src"
(cd "$mnt" && sha256sum --quiet -c "$work/sum.src") &&
	echo "identical: $(wc -l <"$work/sum.src") files"

section "tar of the mount vs tar of SOURCE"
a=$(tar -C "$src" -cf - . 2>/dev/null | wc -c)
b=$(tar -C "$mnt" -cf - . 2>/dev/null | wc -c)
echo "SOURCE $a bytes, mount $b bytes"

section "getfattr and readlink"
getfattr --absolute-names -R -d "$mnt" 2>/dev/null | head -8 || true
find "$mnt" -maxdepth 2 -type l -printf '%P -> %l\n' | head -5

big=$(find "$src" -type f -readable -size +1M -printf '%s %P\n' 2>/dev/null |
	sort -rn | head -1 | cut -d' ' -f2-)
if [ -n "$big" ]; then
	section "fio through the mount on '$big' (read-only)"
	for job in "randread 4k" "read 1M"; do
		set -- $job
		fio --name="$1-$2" --filename="$mnt/$big" --readonly --rw="$1" \
			--bs="$2" --ioengine=psync --runtime=8 --time_based \
			--numjobs=2 --group_reporting --output-format=terse \
			--terse-version=3 >"$work/fio.out"
		awk -F';' '{printf "%-14s %9.0f IOPS %10.1f MiB/s\n", $3, $8, $7/1024}' \
			"$work/fio.out"
	done
fi

section "statistics: getfattr -n user.smmapfs.stats $mnt"
getfattr --absolute-names -n user.smmapfs.stats --only-values "$mnt"

section "the daemon's resources (pid $pid)"
echo "descriptors open on SOURCE: $(ls -l /proc/$pid/fd | grep -c " $src/" || true) (max_fds 4)"
echo "mappings of SOURCE files:   $(grep -c " $src/" /proc/$pid/maps || true) (max_handles 64)"

section "unmount"
fusermount3 -u "$mnt"
wait "$pid"
pid=
echo "unmounted cleanly"
