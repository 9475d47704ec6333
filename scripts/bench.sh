#!/bin/bash
# scripts/bench.sh - smmapfs side by side with native SOURCE and the FUSE
# mirrors users pick today (bindfs, mergerfs, libfuse's passthrough_ll).
#
# Usage: scripts/bench.sh [--quick] [--reps N] [--runtime SECS]
#                         [--systems LIST] [--jobs LIST] [--out DIR]
#                         [--scratch DIR] [--docs|--no-docs] [--clean]
#
# One command: it installs what is missing (fio, bindfs, mergerfs, gnuplot,
# the build tools), builds smmapfs (build-bench-fs, buildtype=release) and
# libfuse's passthrough_ll example (into the scratch directory), creates the
# data once (a 1 GiB file and 2000 files of 1 MiB), then for every
# repetition, job and system mounts the system over the same SOURCE, runs the
# same fio job, records fio's result, the daemon's CPU time and its peak
# descriptors and mappings, and unmounts.  It prints one table of medians,
# writes the CSV (OUT/results.csv, OUT/runs.csv) and, for a full run, updates
# docs/benchmarks.csv, docs/benchmarks.png and the generated part of
# docs/benchmarks.md (between the bench.sh:begin/end markers).
# docs/benchmarks.md explains the jobs, the options and the method.
#
# It touches nothing outside its scratch directory (default
# /var/tmp/smmapfs-bench), its output directory (default bench-out/bench-fs),
# build-bench-fs and, for a full run, the three docs/ outputs.  Run it as
# root (mounting bindfs and mergerfs, raising limits): Debian 12.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"
cd "$TOP"

ALL_SYSTEMS="native smmapfs bindfs mergerfs passthrough_ll"
ANCHORS="bindfs mergerfs passthrough_ll"
ALL_JOBS="seq-first warm-reread dio-128k dio-1m rand4k-1 rand4k-4 files2000"

usage() {
	cat <<EOF
usage: scripts/bench.sh [options]
  --quick           1 repetition, 2 s jobs (development); docs/ untouched
  --reps N          repetitions (default 3)
  --runtime SECS    seconds per time-based job (default 4)
  --systems LIST    comma-separated subset of: ${ALL_SYSTEMS// /,}
  --jobs LIST       comma-separated subset of: ${ALL_JOBS// /,}
  --out DIR         output directory (default bench-out/bench-fs)
  --scratch DIR     data, mount point, helper build (default /var/tmp/smmapfs-bench)
  --docs            update docs/benchmarks.{md,csv,png} even for a partial run
  --no-docs         never update docs/
  --clean           delete the scratch directory (its data) at the end
EOF
}

reps=3
runtime=4
systems=$ALL_SYSTEMS
jobs=$ALL_JOBS
out="$TOP/bench-out/bench-fs"
scratch=/var/tmp/smmapfs-bench
quick=0
docs=auto
clean=0
cmdline="scripts/bench.sh${*:+ $*}"
while [ $# -gt 0 ]; do
	case $1 in
	--quick) quick=1; reps=1; runtime=2 ;;
	--reps) reps=${2:?--reps N}; shift ;;
	--runtime) runtime=${2:?--runtime SECS}; shift ;;
	--systems) systems=${2:?--systems LIST}; systems=${systems//,/ }; shift ;;
	--jobs) jobs=${2:?--jobs LIST}; jobs=${jobs//,/ }; shift ;;
	--out) out=${2:?--out DIR}; shift ;;
	--scratch) scratch=${2:?--scratch DIR}; shift ;;
	--docs) docs=yes ;;
	--no-docs) docs=no ;;
	--clean) clean=1 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown option: $1" ;;
	esac
	shift
done
case $reps in '' | *[!0-9]* | 0) die "--reps wants a positive integer" ;; esac
case $runtime in '' | *[!0-9]* | 0) die "--runtime wants a positive integer (seconds)" ;; esac
for s in $systems; do
	case " $ALL_SYSTEMS " in *" $s "*) ;; *) die "unknown system: $s" ;; esac
done
for j in $jobs; do
	case " $ALL_JOBS " in *" $j "*) ;; *) die "unknown job: $j" ;; esac
done
# Keep the canonical order (the table and chart read better that way).
sel() { local all=$1 want=" $2 " x r=""; for x in $all; do case $want in *" $x "*) r="$r $x" ;; esac; done; echo "${r# }"; }
systems=$(sel "$ALL_SYSTEMS" "$systems")
jobs=$(sel "$ALL_JOBS" "$jobs")
if [ "$docs" = auto ]; then
	if [ $quick -eq 0 ] && [ "$systems" = "$ALL_SYSTEMS" ] && [ "$jobs" = "$ALL_JOBS" ]; then
		docs=yes
	else
		docs=no
	fi
fi
case $scratch in /*) ;; *) scratch="$TOP/$scratch" ;; esac
case $out in /*) ;; *) out="$TOP/$out" ;; esac
case "$scratch$out" in *[[:space:]]*) die "scratch and out paths must not contain white space" ;; esac
[ "$scratch" != / ] || die "refusing / as scratch directory"
[ "$(id -u)" -eq 0 ] || die "run as root (bindfs/mergerfs mounts, installs, limits)"
[ -e /dev/fuse ] || die "/dev/fuse is missing"

SRC="$scratch/src"        # SOURCE, shared by every system
MNT="$scratch/mnt"        # the mount point, one system at a time
HELPERS="$scratch/build"  # passthrough_ll
RUN="$out/raw"            # fio JSON, daemon logs, sampler output
BIG_SIZE=$((1024 * 1024 * 1024))
NFILES=2000
FILE_SIZE=$((1024 * 1024))

# --- tools ------------------------------------------------------------------
ensure_packages "${BUILD_PACKAGES[@]}" fio bindfs mergerfs gnuplot-nox python3 attr procps util-linux
ensure_build build-bench-fs -Dbuildtype=release -Dsanitizers=false -Dtests=disabled ||
	die "build of smmapfs failed"
SMMAPFS="$TOP/build-bench-fs/src/fs/smmapfs"
# What was built: the commit, and whether the sources differed from it.
src_rev=$(git -C "$TOP" rev-parse --short HEAD 2>/dev/null || echo "not a git checkout")
if git -C "$TOP" status --porcelain -- src include meson.build meson_options.txt 2>/dev/null | grep -q .; then
	src_rev="$src_rev + uncommitted changes"
fi
[ -x "$SMMAPFS" ] || die "no smmapfs binary in build-bench-fs"

mkdir -p "$SRC" "$MNT" "$HELPERS" "$out"
# SOURCE must be a disk filesystem: on tmpfs there is no separate page cache
# to keep warm, and O_DIRECT opens fail on kernels before 6.6.
case $(stat -f -c %T "$SRC") in
tmpfs | ramfs | fuseblk | fuse*) die "$SRC is on $(stat -f -c %T "$SRC"); pick a disk filesystem with --scratch DIR" ;;
esac
rm -rf "$RUN"
mkdir -p "$RUN"

# libfuse's passthrough_ll example, built as shipped but for one line: the
# example reopens the file with the client's flags, O_DIRECT included, so
# its direct=1 reads would read the disk instead of SOURCE's page cache
# (bindfs clears O_DIRECT by default, smmapfs never reads through a
# descriptor opened by the client).  Clearing it keeps the anchor on the
# same footing as bindfs and smmapfs (and can only make it faster).
build_passthrough_ll() {
	local ex=/usr/share/doc/libfuse3-dev/examples f
	for f in passthrough_ll.c passthrough_helpers.h; do
		if [ -f "$ex/$f" ]; then cp "$ex/$f" "$HELPERS/$f"
		elif [ -f "$ex/$f.gz" ]; then zcat "$ex/$f.gz" >"$HELPERS/$f"
		else die "passthrough_ll: $ex/$f not found (libfuse3-dev)"; fi
	done
	sed -i 's/fd = open(buf, fi->flags & ~O_NOFOLLOW);/fd = open(buf, fi->flags \& ~(O_NOFOLLOW | O_DIRECT));/' \
		"$HELPERS/passthrough_ll.c"
	grep -q 'O_NOFOLLOW | O_DIRECT' "$HELPERS/passthrough_ll.c" ||
		die "passthrough_ll: could not clear O_DIRECT in lo_open (example changed?)"
	# shellcheck disable=SC2046 # pkg-config output is meant to split
	gcc -O2 -Wall -o "$HELPERS/passthrough_ll" "$HELPERS/passthrough_ll.c" \
		$(pkg-config --cflags --libs fuse3) 2>"$HELPERS/passthrough_ll.log" ||
		{ cat "$HELPERS/passthrough_ll.log" >&2; die "passthrough_ll: build failed"; }
}
case " $systems " in *" passthrough_ll "*) build_passthrough_ll ;; esac

# --- limits -------------------------------------------------------------------
# files2000 keeps 2000 files open in fio and, for the anchors, in the daemon
# (passthrough_ll: also one O_PATH descriptor per inode).  Raise the soft
# descriptor limit for this shell and what it starts.
nofile=65536
hard=$(ulimit -Hn)
[ "$hard" = unlimited ] || [ "$hard" -ge $nofile ] || nofile=$hard
[ "$(ulimit -Sn)" != unlimited ] && [ "$(ulimit -Sn)" -lt "$nofile" ] && ulimit -Sn "$nofile"
[ "$(ulimit -Sn)" = unlimited ] || [ "$(ulimit -Sn)" -ge 8192 ] ||
	die "descriptor limit $(ulimit -Sn) too low for files2000 (need 8192)"

# --- cleanup ------------------------------------------------------------------
DPID=""          # the daemon of the current mount
SAMPLER_PID=""
is_mounted() { awk -v m="$1" '$5 == m { f = 1 } END { exit !f }' /proc/self/mountinfo; }
mount_fstype() {
	awk -v m="$1" '$5 == m { for (i = 7; i <= NF; i++) if ($i == "-") { t = $(i + 1); break } } END { print t }' \
		/proc/self/mountinfo
}
# unmount_mnt: unmount $MNT (politely, then lazily) and make sure the daemon
# we started is gone.  Never kills anything but $DPID and its children.
unmount_mnt() {
	local i
	if is_mounted "$MNT"; then
		for i in 1 2 3 4 5; do
			fusermount3 -u "$MNT" 2>/dev/null || umount "$MNT" 2>/dev/null || true
			is_mounted "$MNT" || break
			sleep 0.2
		done
		if is_mounted "$MNT"; then
			say "lazy unmount of $MNT"
			fusermount3 -uz "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true
		fi
	fi
	if [ -n "$DPID" ]; then
		for i in $(seq 50); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.1; done
		if kill -0 "$DPID" 2>/dev/null; then
			say "daemon $DPID did not exit after unmount; SIGTERM"
			kill_tree TERM "$DPID"
			sleep 0.5
			kill_tree KILL "$DPID"
		fi
		wait "$DPID" 2>/dev/null || true
		DPID=""
	fi
	is_mounted "$MNT" && return 1
	return 0
}
children() { ps -o pid= --ppid "$1" 2>/dev/null | tr -d ' ' || true; }
tree_pids() {   # PID and its descendants
	local p c
	for p in "$@"; do
		kill -0 "$p" 2>/dev/null || continue
		echo "$p"
		for c in $(children "$p"); do tree_pids "$c"; done
	done
}
kill_tree() { local sig=$1 p; shift; for p in $(tree_pids "$@"); do kill "-$sig" "$p" 2>/dev/null || true; done; }
cleanup() {
	local rc=$?
	trap - EXIT INT TERM HUP
	if [ -n "$SAMPLER_PID" ]; then kill "$SAMPLER_PID" 2>/dev/null || true; wait "$SAMPLER_PID" 2>/dev/null || true; fi
	unmount_mnt || say "could not unmount $MNT"
	if [ $clean -eq 1 ]; then rm -rf "${scratch:?}"; fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
# A previous run killed hard may have left its mount behind.
unmount_mnt || die "$MNT is still mounted by something else"

# --- data -----------------------------------------------------------------------
stamp="$SRC/.bench-data"
want_stamp="big=$BIG_SIZE files=$NFILES x $FILE_SIZE v1"
data_ok() {
	[ "$(cat "$stamp" 2>/dev/null)" = "$want_stamp" ] || return 1
	[ "$(stat -c %s "$SRC/big" 2>/dev/null)" = $BIG_SIZE ] || return 1
	[ "$(find "$SRC/f2000" -type f -size "${FILE_SIZE}c" 2>/dev/null | wc -l)" = $NFILES ]
}
if ! data_ok; then
	say "creating the data in $SRC (1 GiB + $NFILES x 1 MiB, once)"
	avail=$(df -P -k "$scratch" | awk 'NR == 2 { print $4 }')
	[ "$avail" -gt $((4 * 1024 * 1024)) ] || die "need 4 GiB free in $scratch"
	rm -rf "${SRC:?}"/* "$stamp"
	mkdir -p "$SRC/f2000"
	fio --name=mkbig --filename="$SRC/big" --rw=write --bs=1m --size=$BIG_SIZE \
		--ioengine=psync --end_fsync=1 --invalidate=0 --output="$RUN/mkbig.txt" >/dev/null ||
		die "data: fio could not write $SRC/big"
	fio --name=mkfiles --directory="$SRC/f2000" --filename_format="f.\$filenum" \
		--nrfiles=$NFILES --filesize=$FILE_SIZE --size=$((NFILES * FILE_SIZE)) \
		--rw=write --bs=1m --openfiles=64 --file_service_type=sequential \
		--ioengine=psync --end_fsync=1 --invalidate=0 --output="$RUN/mkfiles.txt" >/dev/null ||
		die "data: fio could not write $SRC/f2000"
	echo "$want_stamp" >"$stamp"
	data_ok || die "data: files in $SRC are not what was asked for"
fi
# SOURCE's page cache is warmed once here and never dropped.
say "warming SOURCE's page cache"
cat "$SRC/big" >/dev/null
find "$SRC/f2000" -type f -print0 | xargs -0 cat >/dev/null

# --- systems --------------------------------------------------------------------
# The exact mount commands (into CMD); docs/benchmarks.md says why each option.
sys_argv() {
	# shellcheck disable=SC2054 # the commas separate mount options
	case $1 in
	smmapfs) CMD=("$SMMAPFS" -f "$SRC" "$MNT") ;;
	bindfs) CMD=(bindfs -f -r --multithreaded -o kernel_cache,entry_timeout=1,attr_timeout=1 "$SRC" "$MNT") ;;
	mergerfs) CMD=(mergerfs -f -o ro,allow_other,use_ino,cache.files=auto-full,dropcacheonclose=false,async_read=true,cache.entry=1,cache.attr=1,threads=0 "$SRC" "$MNT") ;;
	passthrough_ll) CMD=("$HELPERS/passthrough_ll" -f -o "ro,source=$SRC,cache=always" "$MNT") ;;
	*) CMD=() ;;
	esac
}

# mount_sys SYSTEM: mount it on $MNT, set DPID; 1 if it failed.
mount_sys() {
	local sys=$1 log="$RUN/daemon-$1.log" i t
	[ "$sys" = native ] && return 0
	unmount_mnt || { say "$sys: $MNT still mounted"; return 1; }
	sys_argv "$sys"
	"${CMD[@]}" >>"$log" 2>&1 &
	DPID=$!
	for i in $(seq 200); do
		if ! kill -0 "$DPID" 2>/dev/null; then
			wait "$DPID" 2>/dev/null || true
			DPID=""
			say "$sys: the daemon exited before mounting; its log ($log):"
			tail -5 "$log" >&2
			return 1
		fi
		t=$(mount_fstype "$MNT")
		case $t in fuse | fuse.*)
			[ -f "$MNT/big" ] && return 0 ;;
		esac
		sleep 0.05
	done
	say "$sys: not mounted on $MNT after 10 s (mountinfo type '${t:-none}')"
	unmount_mnt || true
	return 1
}

# cpu_ticks PID...: utime + stime of the processes, in clock ticks.
cpu_ticks() {
	local p line rest sum=0
	for p in "$@"; do
		read -r line <"/proc/$p/stat" 2>/dev/null || continue
		rest=${line##*) }
		# shellcheck disable=SC2086
		set -- $rest
		sum=$((sum + ${12} + ${13}))
	done
	echo $sum
}

# sampler OUTFILE STOPFILE PID...: every ~50 ms, the processes' descriptors
# and mappings of files under SOURCE; writes "peak_fds peak_maps".
sampler() {
	local outf=$1 stop=$2 maxfd=0 maxmap=0 n m c p fds
	shift 2
	shopt -s nullglob
	while :; do
		n=0 m=0
		for p in "$@"; do
			fds=("/proc/$p/fd/"*)
			n=$((n + ${#fds[@]}))
			c=$(grep -c -F -- "$SRC/" "/proc/$p/maps" 2>/dev/null) || c=${c:-0}
			m=$((m + c))
		done
		[ $n -gt $maxfd ] && maxfd=$n
		[ $m -gt $maxmap ] && maxmap=$m
		[ -e "$stop" ] && break
		sleep 0.05
	done
	echo "$maxfd $maxmap" >"$outf"
}

# --- jobs -----------------------------------------------------------------------
# job_args JOB DIR: fio's options for JOB on the tree at DIR.
job_args() {
	local d=$2
	local common=(--ioengine=psync --readonly --invalidate=0 --group_reporting)
	local timed=(--time_based "--runtime=$runtime")
	case $1 in
	seq-first) echo "${common[*]} --filename=$d/big --rw=read --bs=1m --direct=0 --size=$BIG_SIZE" ;;
	warm-reread) echo "${common[*]} ${timed[*]} --filename=$d/big --rw=read --bs=1m --direct=0" ;;
	dio-128k) echo "${common[*]} ${timed[*]} --filename=$d/big --rw=read --bs=128k --direct=1" ;;
	dio-1m) echo "${common[*]} ${timed[*]} --filename=$d/big --rw=read --bs=1m --direct=1" ;;
	rand4k-1) echo "${common[*]} ${timed[*]} --filename=$d/big --rw=randread --bs=4k --direct=1 --numjobs=1" ;;
	rand4k-4) echo "${common[*]} ${timed[*]} --filename=$d/big --rw=randread --bs=4k --direct=1 --numjobs=4" ;;
	files2000) echo "${common[*]} ${timed[*]} --directory=$d/f2000 --filename_format=f.\$filenum --nrfiles=$NFILES --openfiles=$NFILES --file_service_type=random --filesize=$FILE_SIZE --bs=8k --rw=randread --direct=1" ;;
	esac
}

# Before the timed part: the same for every system.  Time-based jobs first
# read their files once through the mount (steady state: a daemon that has
# served a file before, as a long-running mirror has; for native it is a
# no-op on the warm page cache).  Only seq-first measures a cold FUSE side.
prepare_job() {
	local job=$1 dir=$2
	case $job in
	seq-first) cat "$SRC/big" >/dev/null ;;   # SOURCE warm (it is: cheap), FUSE side cold (fresh mount)
	warm-reread | dio-128k | dio-1m | rand4k-1 | rand4k-4)
		cat "$dir/big" >/dev/null ;;       # one full read through the mount, then fio reopens
	files2000) find "$dir/f2000" -type f -exec cat {} + >/dev/null ;;
	esac
}

runs_tsv="$RUN/runs.tsv"
printf 'rep\tpos\tsystem\tjob\tstatus\tjson\tcpu_ticks\tpeak_fds\tpeak_maps\n' >"$runs_tsv"
clk_tck=$(getconf CLK_TCK)
nfail=0

# run_one REP POS SYSTEM JOB
run_one() {
	local rep=$1 pos=$2 sys=$3 job=$4 dir tag json pids t0 t1 stop samp rc=0 args
	tag="r$rep-$job-$sys"
	json="$RUN/$tag.json"
	if [ "$sys" = native ]; then
		dir=$SRC
	else
		if ! mount_sys "$sys"; then
			say "FAILED: $sys / $job (rep $rep): mount"
			printf '%s\t%s\t%s\t%s\tmount-failed\t\t\t\t\n' "$rep" "$pos" "$sys" "$job" >>"$runs_tsv"
			nfail=$((nfail + 1))
			return 0
		fi
		dir=$MNT
	fi
	prepare_job "$job" "$dir" || {
		say "FAILED: $sys / $job (rep $rep): warm-up read"
		printf '%s\t%s\t%s\t%s\tprepare-failed\t\t\t\t\n' "$rep" "$pos" "$sys" "$job" >>"$runs_tsv"
		nfail=$((nfail + 1))
		unmount_mnt || true
		return 0
	}
	pids=""
	[ -n "$DPID" ] && pids=$(tree_pids "$DPID" | tr '\n' ' ')
	stop="$RUN/$tag.stop"
	samp="$RUN/$tag.sampler"
	rm -f "$stop" "$samp"
	SAMPLER_PID=""
	if [ -n "$pids" ]; then
		# shellcheck disable=SC2086
		sampler "$samp" "$stop" $pids &
		SAMPLER_PID=$!
	fi
	# shellcheck disable=SC2086
	t0=$(cpu_ticks $pids)
	args=$(job_args "$job" "$dir")
	# shellcheck disable=SC2086 # job_args is meant to split
	timeout $((runtime + 120)) fio --name="$job" $args --output-format=json --output="$json" \
		>"$RUN/$tag.fio.log" 2>&1 || rc=$?
	# shellcheck disable=SC2086
	t1=$(cpu_ticks $pids)
	if [ -n "$SAMPLER_PID" ]; then
		touch "$stop"
		wait "$SAMPLER_PID" 2>/dev/null || true
		SAMPLER_PID=""
	fi
	if [ "$sys" = smmapfs ]; then
		getfattr -n user.smmapfs.stats --only-values "$MNT" >"$RUN/$tag.stats" 2>/dev/null || true
	fi
	local st=ok
	if [ $rc -ne 0 ]; then
		st="fio-failed($rc)"
		say "FAILED: $sys / $job (rep $rep): fio exit $rc; $RUN/$tag.fio.log:"
		tail -5 "$RUN/$tag.fio.log" >&2
		nfail=$((nfail + 1))
	fi
	if [ "$sys" != native ] && [ -n "$DPID" ] && ! kill -0 "$DPID" 2>/dev/null; then
		st="daemon-died"
		say "FAILED: $sys / $job (rep $rep): the daemon died during the job (log: $RUN/daemon-$sys.log)"
		nfail=$((nfail + 1))
	fi
	local peaks="${pids:+$(cat "$samp" 2>/dev/null)}"
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rep" "$pos" "$sys" "$job" "$st" "$json" \
		"$([ -n "$pids" ] && echo $((t1 - t0)))" "${peaks% *}" "${peaks#* }" >>"$runs_tsv"
	rm -f "$stop"
	if [ "$sys" != native ]; then
		unmount_mnt || { say "FAILED: $sys: could not unmount $MNT"; return 1; }
	fi
}

# --- the measurements ---------------------------------------------------------
read -r -a sys_arr <<<"$systems"
nsys=${#sys_arr[@]}
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u '+%Y-%m-%d %H:%M UTC')
t_start=$(date +%s)
say "systems: $systems; jobs: $jobs; $reps repetition(s), ${runtime} s per time-based job"
for rep in $(seq "$reps"); do
	# Rotate the order of the systems from one repetition to the next, so a
	# burst of load from other tenants does not always hit the same system.
	order=()
	for i in $(seq 0 $((nsys - 1))); do order+=("${sys_arr[$(((i + rep - 1) % nsys))]}"); done
	say "repetition $rep/$reps, order: ${order[*]}"
	for job in $jobs; do
		pos=0
		for sys in "${order[@]}"; do
			pos=$((pos + 1))
			[ -t 2 ] && printf '   %-12s %-15s\r' "$job" "$sys" >&2
			run_one "$rep" "$pos" "$sys" "$job" || die "$sys / $job: cleanup failed"
		done
	done
done
[ -t 2 ] && printf '%60s\r' '' >&2
elapsed=$(($(date +%s) - t_start))
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# --- report ---------------------------------------------------------------------
cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
mem_gib=$(awk '/^MemTotal/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo)
BENCH_RUNS=$runs_tsv BENCH_OUT=$out BENCH_TOP=$TOP BENCH_DOCS=$docs BENCH_SYSTEMS=$systems
BENCH_ANCHORS=$ANCHORS BENCH_JOBS=$jobs BENCH_REPS=$reps BENCH_RUNTIME=$runtime
BENCH_CLK_TCK=$clk_tck BENCH_CMD=$cmdline BENCH_DATE=$started BENCH_ELAPSED=$elapsed
BENCH_LOAD="$load_before -> $load_after" BENCH_NPROC=$(nproc) BENCH_MEM="$mem_gib GiB"
BENCH_KERNEL=$(uname -r) BENCH_CPU=$cpu_model BENCH_FIO=$(fio --version)
BENCH_FUSE=$(pkg-config --modversion fuse3)
BENCH_BINDFS=$(dpkg-query -W -f='${Version}' bindfs)
BENCH_MERGERFS=$(dpkg-query -W -f='${Version}' mergerfs)
# shellcheck disable=SC1091
BENCH_OS="$(. /etc/os-release && echo "$PRETTY_NAME") ($(cat /etc/debian_version 2>/dev/null))"
BENCH_FS="$(df -P -T "$SRC" | awk 'NR == 2 { print $2 }') ($(findmnt -n -o SOURCE --target "$SRC"))"
BENCH_SCRATCH=$scratch BENCH_REV=$src_rev
export BENCH_RUNS BENCH_OUT BENCH_TOP BENCH_DOCS BENCH_SYSTEMS BENCH_ANCHORS BENCH_JOBS \
	BENCH_REPS BENCH_RUNTIME BENCH_CLK_TCK BENCH_CMD BENCH_DATE BENCH_ELAPSED BENCH_LOAD \
	BENCH_NPROC BENCH_MEM BENCH_KERNEL BENCH_CPU BENCH_FIO BENCH_FUSE BENCH_BINDFS \
	BENCH_MERGERFS BENCH_OS BENCH_FS BENCH_SCRATCH BENCH_REV
for s in smmapfs bindfs mergerfs passthrough_ll; do
	sys_argv "$s"
	c="${CMD[*]}"
	c=${c//$scratch/\$SCRATCH}
	c=${c//$TOP\//}
	export "BENCH_CMD_$s=$c"
done

python3 - <<'PY'
import csv, json, math, os, re, statistics, subprocess, sys

E = os.environ
out, top = E["BENCH_OUT"], E["BENCH_TOP"]
systems = E["BENCH_SYSTEMS"].split()
anchors = [a for a in E["BENCH_ANCHORS"].split() if a in systems]
jobs = E["BENCH_JOBS"].split()
clk = float(E["BENCH_CLK_TCK"])
GIB, MIB = 2.0**30, 2.0**20
IOPS_JOBS = {"rand4k-1", "rand4k-4", "files2000"}

def fio_result(path):
    try:
        text = open(path).read()
        data = json.loads(text[text.index("{"):])
        r = data["jobs"][0]["read"]
        return r["io_bytes"], r["runtime"], r["bw_bytes"], r["iops"]
    except Exception as e:  # noqa: BLE001 - any parse problem is a failed run
        return None

runs = []
with open(E["BENCH_RUNS"]) as f:
    for row in csv.DictReader(f, delimiter="\t"):
        r = dict(row)
        r["ok"] = False
        if r["status"] == "ok":
            res = fio_result(r["json"])
            if res is None or res[0] == 0:
                r["status"] = "no-fio-result"
            else:
                io, rt, bw, iops = res
                r.update(io_bytes=io, runtime_ms=rt, mib_s=bw / MIB, iops=iops, ok=True)
                if r["cpu_ticks"] not in ("", None):
                    cpu = int(r["cpu_ticks"]) / clk
                    r["cpu_s"] = cpu
                    r["cpu_s_per_gib"] = cpu / (io / GIB)
        runs.append(r)

def med(v):
    return statistics.median(v) if v else None

res = {}
for j in jobs:
    for s in systems:
        rr = [r for r in runs if r["job"] == j and r["system"] == s]
        ok = [r for r in rr if r["ok"]]
        unit = "IOPS" if j in IOPS_JOBS else "MiB/s"
        val = [r["iops"] if unit == "IOPS" else r["mib_s"] for r in ok]
        cpu = [r["cpu_s_per_gib"] for r in ok if "cpu_s_per_gib" in r]
        fds = [int(r["peak_fds"]) for r in ok if r.get("peak_fds")]
        mps = [int(r["peak_maps"]) for r in ok if r.get("peak_maps")]
        res[j, s] = dict(
            unit=unit, n=len(ok), failed=len(rr) - len(ok),
            med=med(val), min=min(val) if val else None, max=max(val) if val else None,
            mib_s=med([r["mib_s"] for r in ok]), iops=med([r["iops"] for r in ok]),
            cpu=med(cpu), cpu_min=min(cpu) if cpu else None, cpu_max=max(cpu) if cpu else None,
            fds=max(fds) if fds else None, maps=max(mps) if mps else None,
            status=",".join(sorted({r["status"] for r in rr if not r["ok"]})))

best = {}
for j in jobs:
    cand = [(res[j, a]["med"], a) for a in anchors if res[j, a]["med"]]
    best[j] = max(cand) if cand else (None, None)
for (j, s), d in res.items():
    nat = res.get((j, "native"), {}).get("med")
    d["x_native"] = d["med"] / nat if d["med"] and nat else None
    d["x_best"] = d["med"] / best[j][0] if d["med"] and best[j][0] else None
    d["best_anchor"] = best[j][1] or ""

def fmt(v, nd=None):
    if v is None:
        return "-"
    if isinstance(v, int):
        return str(v)
    if nd is not None:
        return f"{v:.{nd}f}"
    a = abs(v)
    return f"{v:.0f}" if a >= 100 else f"{v:.1f}" if a >= 10 else f"{v:.2f}" if a >= 0.1 else f"{v:.3f}"

# ---- CSV ----
cols = ["job", "system", "unit", "median", "min", "max", "reps_ok", "runs_failed",
        "mib_s_median", "iops_median", "x_native", "x_best_anchor", "best_anchor",
        "cpu_s_per_gib_median", "cpu_s_per_gib_min", "cpu_s_per_gib_max",
        "peak_fds", "peak_mappings"]
def rnd(v, n=4):
    return "" if v is None else (round(v, n) if isinstance(v, float) else v)
rows = []
for j in jobs:
    for s in systems:
        d = res[j, s]
        rows.append([j, s, d["unit"], rnd(d["med"], 2), rnd(d["min"], 2), rnd(d["max"], 2), d["n"],
                     d["failed"], rnd(d["mib_s"], 2), rnd(d["iops"], 1), rnd(d["x_native"], 3),
                     rnd(d["x_best"], 3), d["best_anchor"], rnd(d["cpu"], 3), rnd(d["cpu_min"], 3),
                     rnd(d["cpu_max"], 3), rnd(d["fds"]), rnd(d["maps"])])
def write_csv(path, header, data):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(data)
write_csv(os.path.join(out, "results.csv"), cols, rows)
rcols = ["rep", "position", "system", "job", "status", "mib_s", "iops", "io_bytes", "runtime_ms",
         "cpu_s", "cpu_s_per_gib", "peak_fds", "peak_mappings"]
write_csv(os.path.join(out, "runs.csv"), rcols,
          [[r["rep"], r["pos"], r["system"], r["job"], r["status"], rnd(r.get("mib_s"), 2),
            rnd(r.get("iops"), 1), r.get("io_bytes", ""), r.get("runtime_ms", ""),
            rnd(r.get("cpu_s"), 3), rnd(r.get("cpu_s_per_gib"), 3), r.get("peak_fds", ""),
            r.get("peak_maps", "")] for r in runs])

# ---- table ----
hdr = f"{'job':<12} {'system':<15} {'median':>9} {'unit':<6} {'min..max':>17} {'x native':>8} {'x best':>7} {'CPU s/GiB':>9} {'fds':>6} {'maps':>6}"
lines = [hdr, "-" * len(hdr)]
for j in jobs:
    for s in systems:
        d = res[j, s]
        mm = f"{fmt(d['min'])}..{fmt(d['max'])}" if d["n"] else (d["status"] or "-")
        lines.append(f"{j:<12} {s:<15} {fmt(d['med']):>9} {d['unit']:<6} {mm:>17} {fmt(d['x_native'], 2):>8} "
                     f"{fmt(d['x_best'], 2):>7} {fmt(d['cpu']):>9} {fmt(d['fds']):>6} {fmt(d['maps']):>6}")
    lines.append(f"{'':<12} best anchor: {best[j][1] or '-'}")
table = "\n".join(lines)

# ---- targets ----
def tgt(job, key, thr, label):
    d = res.get((job, "smmapfs"))
    if not d or d.get(key) is None:
        return (label, "-", "not measured")
    v = d[key]
    return (label, f"{v:.2f}x", "**met**" if v >= thr else "**missed**")
targets = []
if "smmapfs" in systems:
    for j, thr in (("seq-first", 1.3), ("dio-128k", 1.3), ("dio-1m", 1.3), ("rand4k-1", 1.2), ("rand4k-4", 1.2)):
        if j in jobs:
            targets.append(tgt(j, "x_best", thr, f"{j} >= {thr}x best anchor"))
    if "warm-reread" in jobs:
        targets.append(tgt("warm-reread", "x_native", 0.95, "warm-reread >= 0.95x native"))
    if "files2000" in jobs:
        d = res["files2000", "smmapfs"]
        lab, v, verdict = tgt("files2000", "x_best", 1.2, "files2000 >= 1.2x best anchor, smmapfs <= 32 descriptors")
        fd = d["fds"]
        anc_fds = ", ".join(f"{a} {fmt(res['files2000', a]['fds'])}" for a in anchors)
        ok = verdict == "**met**" and fd is not None and fd <= 32
        targets.append((lab, f"{v}, {fmt(fd)} fds (anchors: {anc_fds})",
                        "**met**" if ok else "**missed**" if d["med"] else "not measured"))
    if "bindfs" in systems:
        parts, allok, any_ = [], True, False
        for j in jobs:
            if j == "warm-reread":
                continue   # the daemon serves nothing once the page cache is warm
            a, b = res[j, "smmapfs"]["cpu"], res[j, "bindfs"]["cpu"]
            if a is None or b is None or b == 0:
                continue
            any_ = True
            parts.append(f"{j} {a / b:.2f}")
            allok &= a / b <= 0.7
        targets.append(("daemon CPU/GiB <= 0.7x bindfs (each job but warm-reread)", "; ".join(parts) or "-",
                        ("**met**" if allok else "**missed**") if any_ else "not measured"))
print()
print(table)
print()
for t in targets:
    print(f"  {t[0]:<58} {t[1]:<30} {t[2].strip('*')}")
with open(os.path.join(out, "table.txt"), "w") as f:
    f.write(table + "\n")

# ---- chart ----
def chart(png):
    dat = os.path.join(out, "chart.dat")
    with open(dat, "w") as f:
        f.write("# job " + " ".join(systems) + " " + " ".join("cpu_" + s for s in systems) + "\n")
        for j in jobs:
            vals = [res[j, s]["x_best"] for s in systems]
            cpus = [res[j, s]["cpu"] for s in systems]
            f.write(j + " " + " ".join("NaN" if v is None else f"{v:.4f}" for v in vals) + " "
                    + " ".join("NaN" if v is None or v <= 0 else f"{v:.4f}" for v in cpus) + "\n")
    n = len(systems)
    colors = {"native": "#7f7f7f", "smmapfs": "#d62728", "bindfs": "#1f77b4",
              "mergerfs": "#2ca02c", "passthrough_ll": "#9467bd"}
    daemons = [s for s in systems if s != "native"]
    gp = [
        f"set terminal pngcairo size 1400,1000 font 'sans,11'",
        f"set output '{png}'",
        "set multiplot layout 2,1 title 'scripts/bench.sh: " + E["BENCH_DATE"] + ", " + E["BENCH_NPROC"]
        + " CPUs, medians of " + E["BENCH_REPS"] + " runs' font 'sans,13'",
        "set style data histogram", "set style histogram clustered gap 1",
        "set style fill solid 0.9 border -1", "set boxwidth 0.9",
        "set key outside right top vertical", "set grid ytics mytics",
        "set logscale y 2", "set xtics nomirror", "set ytics nomirror",
        "set ylabel 'throughput / best anchor (log)'",
        "set title 'Throughput relative to the best of bindfs, mergerfs, passthrough\\_ll (1 = best anchor; higher is better)'",
        "set yrange [0.0625:*]",
        "plot " + ", ".join(
            f"'{dat}' using {i + 2}:xtic(1) title '{s.replace('_', chr(92) + '_')}' lc rgb '{colors[s]}'"
            for i, s in enumerate(systems)) + ", 1 notitle lc rgb 'black' dt 2",
        "set ylabel 'daemon CPU seconds per GiB served (log)'",
        "set title 'Daemon CPU per GiB read by fio (lower is better; warm-reread: the page cache serves)'",
        "set logscale y 10", "set yrange [*:*]",
        "plot " + ", ".join(
            f"'{dat}' using {n + 2 + systems.index(s)}:xtic(1) title '{s.replace('_', chr(92) + '_')}' lc rgb '{colors[s]}'"
            for s in daemons),
        "unset multiplot",
    ]
    with open(os.path.join(out, "chart.gp"), "w") as f:
        f.write("\n".join(gp) + "\n")
    r = subprocess.run(["gnuplot", os.path.join(out, "chart.gp")], capture_output=True, text=True)
    if r.returncode != 0:
        print("bench: gnuplot failed:\n" + r.stderr, file=sys.stderr)
        return False
    return True

chart_ok = chart(os.path.join(out, "benchmarks.png"))

if E["BENCH_DOCS"] != "yes":
    print(f"\nbench: {out}/results.csv, runs.csv, table.txt, benchmarks.png (docs/ untouched)")
    sys.exit(0)

# ---- docs ----
import shutil
docs = os.path.join(top, "docs")
shutil.copy(os.path.join(out, "results.csv"), os.path.join(docs, "benchmarks.csv"))
if chart_ok:
    shutil.copy(os.path.join(out, "benchmarks.png"), os.path.join(docs, "benchmarks.png"))

def mdrow(cells):
    return "| " + " | ".join(str(c) for c in cells) + " |"
md = []
md.append("<!-- bench.sh:begin - generated by scripts/bench.sh; edits between the markers are overwritten -->")
md.append("")
md.append("### Run (generated)")
md.append("")
md.append("| | |")
md.append("|---|---|")
for k, v in [
    ("command", f"`{E['BENCH_CMD']}` (as root, from the top of the source tree)"),
    ("date", E["BENCH_DATE"] + f" (the machine's clock); {int(E['BENCH_ELAPSED']) // 60} min {int(E['BENCH_ELAPSED']) % 60} s of measuring"),
    ("repetitions", f"{E['BENCH_REPS']}, system order rotated each repetition; time-based jobs {E['BENCH_RUNTIME']} s"),
    ("nproc", E["BENCH_NPROC"]),
    ("memory", E["BENCH_MEM"]),
    ("kernel", E["BENCH_KERNEL"]),
    ("CPU", E["BENCH_CPU"]),
    ("load average (1/5/15 min) before -> after", E["BENCH_LOAD"]),
    ("OS", E["BENCH_OS"]),
    ("SOURCE", f"`$SCRATCH/src` on {E['BENCH_FS']}, SCRATCH = `{E['BENCH_SCRATCH']}`"),
    ("smmapfs built from", E["BENCH_REV"] + " (build-bench-fs, buildtype=release)"),
    ("versions", f"{E['BENCH_FIO']}, libfuse {E['BENCH_FUSE']}, bindfs {E['BENCH_BINDFS']}, mergerfs {E['BENCH_MERGERFS']}"),
]:
    md.append(mdrow([k, v]))
md.append("")
md.append("Mount commands (`-f`: foreground, so the script knows the daemon's PID):")
md.append("")
md.append("```")
for s in systems:
    if s != "native":
        md.append(E.get("BENCH_CMD_" + s, ""))
md.append("```")
md.append("")
md.append("### Results (generated; " + (f"medians of {E['BENCH_REPS']} runs)" if E["BENCH_REPS"] != "1" else "one run)"))
md.append("")
md.append("x native / x best: the median divided by native's / by the best anchor's median "
          "(best of bindfs, mergerfs, passthrough_ll for that job). CPU s/GiB: the daemon's user+system "
          "CPU seconds during the job per GiB fio read. fds, maps: the daemon's peak descriptors and "
          "mappings of files under SOURCE, sampled every 50 ms. min..max are over the runs.")
md.append("")
md.append(mdrow(["job", "system", "median", "unit", "min..max", "x native", "x best", "CPU s/GiB", "peak fds", "peak maps"]))
md.append(mdrow(["---"] * 2 + ["---:"] * 8))
for j in jobs:
    for s in systems:
        d = res[j, s]
        name = f"**{s}**" if s == "smmapfs" else s
        jn = j if s == systems[0] else ""
        mm = f"{fmt(d['min'])}..{fmt(d['max'])}" if d["n"] else (d["status"] or "-")
        xb = fmt(d["x_best"], 2)
        if s == best[j][1]:
            xb += " (best)"
        md.append(mdrow([jn, name, fmt(d["med"]), d["unit"], mm, fmt(d["x_native"], 2), xb,
                         fmt(d["cpu"]), fmt(d["fds"]), fmt(d["maps"])]))
md.append("")
md.append("### Targets (generated)")
md.append("")
md.append(mdrow(["target", "smmapfs in this run", "verdict"]))
md.append(mdrow(["---", "---", "---"]))
for t in targets:
    md.append(mdrow(t))
md.append("")
if chart_ok:
    md.append("![throughput relative to the best anchor, and daemon CPU per GiB](benchmarks.png)")
    md.append("")
md.append("Every run's numbers: [benchmarks.csv](benchmarks.csv) (medians, min, max); "
          "`bench-out/bench-fs/runs.csv` (each run) and `bench-out/bench-fs/raw/` (fio JSON, smmapfs statistics).")
md.append("")
md.append("<!-- bench.sh:end -->")
block = "\n".join(md)

path = os.path.join(docs, "benchmarks.md")
text = open(path).read()
begin = text.find("<!-- bench.sh:begin")
end = text.find("<!-- bench.sh:end -->")
if begin >= 0 and end > begin:
    text = text[:begin] + block + text[end + len("<!-- bench.sh:end -->"):]
else:
    head = "## smmapfs vs native and FUSE mirrors (scripts/bench.sh)"
    text = text.rstrip("\n") + "\n\n" + ("" if head in text else head + "\n\n") + block + \
        "\n\n### Analysis\n\n(hand-written; not regenerated)\n"
with open(path, "w") as f:
    f.write(text)
print(f"\nbench: updated docs/benchmarks.md (generated section), docs/benchmarks.csv, docs/benchmarks.png; "
      f"{out}/runs.csv has every run")
PY
[ $nfail -eq 0 ] || { say "$nfail run(s) failed (see above and $RUN)"; exit 1; }
