#!/bin/sh
# bench-lib.sh - build and run the libsmmap benchmark (tests/bench/bench_lib.c).
#
# Usage: scripts/bench-lib.sh [bench_lib options]    e.g. --quick, --reps 7
#
#  - installs what is missing (meson, ninja-build, pkg-config, gcc) with
#    apt-get when run as root, running `apt-get update` only if a package
#    cannot be found;
#  - configures build-bench (buildtype=release, -Dsanitizers=false) or
#    updates it if it exists, and builds only the benchmark program;
#  - raises vm.max_map_count for the 100,000-region lookup measurement when
#    it is too low (root only) and restores the old value on exit;
#  - runs the program: the table goes to stdout and to
#    bench-out/bench-lib.txt, the CSV to bench-out/bench-lib.csv (pass
#    --csv FILE to change it).
#
# Idempotent: run it as often as you like.  Meant for Debian 12 as root; as
# another user it installs nothing and leaves vm.max_map_count alone (the
# program then skips the region counts that do not fit).
set -eu

here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
root=$(dirname -- "$here")
cd "$root"

build='build-bench'
out='bench-out'
# Room for 10 + 1,000 + 100,000 regions at once, plus the process's own maps.
want_map_count=262144

log() { printf 'bench-lib: %s\n' "$*" >&2; }

is_root() { [ "$(id -u)" -eq 0 ]; }

# --- 1. tools -------------------------------------------------------------
missing=""
command -v meson >/dev/null 2>&1 || missing="$missing meson"
command -v ninja >/dev/null 2>&1 || missing="$missing ninja-build"
command -v pkg-config >/dev/null 2>&1 || missing="$missing pkg-config"
command -v gcc >/dev/null 2>&1 || missing="$missing gcc"
[ -e /usr/include/stdio.h ] || missing="$missing libc6-dev"
if [ -n "$missing" ]; then
	if ! is_root; then
		log "missing:$missing (run as root to install them)"
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	log "installing:$missing"
	# shellcheck disable=SC2086 # word splitting intended
	if ! apt-get install -y $missing; then
		log "apt-get install failed; running apt-get update and retrying"
		apt-get update
		# shellcheck disable=SC2086
		apt-get install -y $missing
	fi
fi

# --- 2. build -------------------------------------------------------------
# Only the library and the benchmark are built; the filesystem and the unit
# tests are not needed here.
opts="-Dbuildtype=release -Dsanitizers=false -Dfuse=disabled"
if [ -f "$build/build.ninja" ]; then
	# shellcheck disable=SC2086
	meson configure "$build" $opts >/dev/null
else
	# shellcheck disable=SC2086
	meson setup "$build" $opts
fi
ninja -C "$build" tests/bench/bench_lib
bench="$build/tests/bench/bench_lib"

# --- 3. vm.max_map_count --------------------------------------------------
mmc_file=/proc/sys/vm/max_map_count
old_mmc=""
# shellcheck disable=SC2317 # called by the EXIT trap
restore() {
	if [ -n "$old_mmc" ]; then
		if echo "$old_mmc" >"$mmc_file" 2>/dev/null; then
			log "restored vm.max_map_count=$old_mmc"
		else
			log "could not restore vm.max_map_count=$old_mmc"
		fi
		old_mmc=""
	fi
}
trap restore EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

if [ -r "$mmc_file" ]; then
	cur=$(cat "$mmc_file")
	if [ "$cur" -lt "$want_map_count" ]; then
		if is_root && echo "$want_map_count" >"$mmc_file" 2>/dev/null
		then
			old_mmc=$cur
			log "raised vm.max_map_count $cur -> $want_map_count (restored on exit)"
		else
			log "vm.max_map_count=$cur is low and cannot be raised; large region counts will be skipped"
		fi
	fi
fi

# --- 4. run ---------------------------------------------------------------
mkdir -p "$out"
log "running $bench --csv $out/bench-lib.csv $*"
# Not exec: the EXIT trap must run to restore vm.max_map_count.
status=0
"$bench" --csv "$out/bench-lib.csv" "$@" >"$out/bench-lib.txt" || status=$?
cat "$out/bench-lib.txt"
if [ "$status" -eq 0 ]; then
	log "table: $out/bench-lib.txt, CSV: $out/bench-lib.csv"
fi
exit "$status"
