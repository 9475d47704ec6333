#!/usr/bin/env bash
# scripts/soak.sh [MINUTES] - a soak run of smmapfs (a script, not a test).
#
# Mounts a scratch SOURCE with small limits and, for MINUTES (default 30),
# runs mixed fio readers (random 4-64 KiB over many files, sequential 1 MiB
# over large ones) through the mount while another loop churns SOURCE
# (rewrites, truncates, extends, renames, deletes and recreates files).
# Every second it samples the daemon's RSS, descriptors, mappings of SOURCE
# files and its statistics, and at the end prints the maxima.  Fails when a
# bound is crossed, the daemon dies, or its RSS keeps growing (the last
# third of the run ends more than 20% and 8 MiB above the first third's
# maximum).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

minutes=${1:-30}
case $minutes in *[!0-9]* | "") die "usage: $0 [MINUTES]" ;; esac
ensure_packages "${BUILD_PACKAGES[@]}" fio attr python3
ensure_build build
BIN=${SMMAPFS_BIN:-$TOP/build/src/fs/smmapfs}
[ -e /dev/fuse ] || die "/dev/fuse is missing"

work=$(mktemp -d /tmp/smmapfs-soak.XXXXXX)
src=$work/src mnt=$work/mnt
mkdir -p "$src/small" "$src/large" "$src/churn" "$mnt"
max_fds=4 max_handles=64 max_mapped=$((32 << 20))
opts="window_size=256K,max_mapped=$max_mapped,max_handles=$max_handles,max_fds=$max_fds,attr_timeout=0.2,entry_timeout=0.2"
pids=()

cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -u -z "$mnt" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

say "creating SOURCE in $src"
for i in $(seq 0 499); do head -c $((4096 + (i % 16) * 4096)) /dev/urandom >"$src/small/f$i"; done
for i in 0 1 2 3; do head -c $((64 << 20)) /dev/urandom >"$src/large/l$i"; done
for i in $(seq 0 19); do head -c $((1 << 20)) /dev/urandom >"$src/churn/c$i"; done

"$BIN" -f -o "$opts" "$src" "$mnt" 2>"$work/daemon.log" &
daemon=$!
for _ in $(seq 100); do
	grep -q " $mnt " /proc/self/mountinfo && break
	sleep 0.1
done
grep -q " $mnt " /proc/self/mountinfo || die "mount failed: $(cat "$work/daemon.log")"

secs=$((minutes * 60))
say "soaking for $minutes min (daemon pid $daemon, $opts)"
fio --name=small --opendir="$mnt/small" --readonly \
	--rw=randread --bsrange=4k-64k --ioengine=psync --numjobs=2 \
	--runtime="$secs" --time_based --file_service_type=random \
	--output="$work/fio-small.log" >/dev/null 2>&1 &
pids+=($!)
fio --name=large --opendir="$mnt/large" --readonly --rw=read --bs=1M \
	--ioengine=psync --runtime="$secs" --time_based \
	--output="$work/fio-large.log" >/dev/null 2>&1 &
pids+=($!)

# Churn: rewrite / truncate / extend / rename / delete+recreate.
(
	n=0
	end=$((SECONDS + secs))
	while [ $SECONDS -lt $end ]; do
		f=$src/churn/c$((n % 20))
		case $((n % 5)) in
		0) head -c $((1 << 20)) /dev/urandom >"$f.new" && mv "$f.new" "$f" ;;
		1) truncate -s $((RANDOM * 16)) "$f" ;;
		2) head -c 65536 /dev/urandom >>"$f" ;;
		3) rm -f "$f" && head -c 300000 /dev/urandom >"$f" ;;
		4) dd if=/dev/urandom of="$f" bs=4k count=8 conv=notrunc status=none ;;
		esac
		n=$((n + 1))
		sleep 0.05
	done
	echo "$n" >"$work/churn.rounds"
) &
pids+=($!)
# Readers of the churned files: any outcome but a hang or a crash is fine.
(
	end=$((SECONDS + secs))
	while [ $SECONDS -lt $end ]; do
		timeout 10 cat "$mnt"/churn/* >/dev/null 2>&1 || [ $? -ne 124 ] ||
			echo "read hung" >>"$work/hangs"
	done
) &
pids+=($!)

status=0
python3 - "$daemon" "$mnt" "$src" "$secs" "$max_fds" "$max_handles" "$max_mapped" <<'EOF' || status=1
import os, sys, time
pid, mnt, src, secs, max_fds, max_handles, max_mapped = sys.argv[1:]
pid, secs = int(pid), int(secs)
max_fds, max_handles, max_mapped = int(max_fds), int(max_handles), int(max_mapped)
page = os.sysconf("SC_PAGE_SIZE")
rss, peaks, bad = [], {}, []
end = time.monotonic() + secs
def source_maps(pid):
    out = set()
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            p = line.split(None, 5)
            if len(p) == 6 and p[5].startswith(src + "/"):
                out.add((p[0], p[5]))
    return out

def source_fds(pid):
    out = set()
    for n in os.listdir("/proc/%d/fd" % pid):
        try:  # the daemon's descriptors are transient: some close meanwhile
            t = os.readlink("/proc/%d/fd/%s" % (pid, n))
        except FileNotFoundError:
            continue
        if t.startswith(src + "/"):
            out.add((n, t))
    return out

while time.monotonic() < end:
    try:
        with open("/proc/%d/status" % pid) as f:
            r = [int(l.split()[1]) for l in f if l.startswith("VmRSS:")][0]
        # /proc/PID/maps and fd are read in pieces: while the daemon maps and
        # unmaps, one read can show an old and a new mapping side by side.
        # Count what two reads in a row agree on.  (Stopping the daemon for
        # an exact snapshot can deadlock: a thread sending a cache
        # invalidation may wait in the kernel for a read only the daemon can
        # answer.)  The daemon's own counters are checked strictly below.
        m1, f1 = source_maps(pid), source_fds(pid)
        m2, f2 = source_maps(pid), source_fds(pid)
        both = m1 & m2
        fds = len(f1 & f2)
        maps = len(both)
        nbytes = 0
        for rng, _ in both:
            lo, hi = (int(x, 16) for x in rng.split("-"))
            nbytes += hi - lo
        st = dict(l.split("=") for l in os.getxattr(mnt, "user.smmapfs.stats").decode().split())
        st = {k: int(v) for k, v in st.items()}
    except (OSError, IndexError) as e:
        print("sample failed: %s" % e); sys.exit(1)
    rss.append(r)
    sample = {"rss_kib": r, "source_fds": fds, "source_maps": maps,
              "mapped_vma_bytes": nbytes, "mapped_bytes": st["mapped_bytes"],
              "mappings": st["mappings"], "fds": st["fds"]}
    for k, v in sample.items():
        peaks[k] = max(peaks.get(k, 0), v)
    if fds > max_fds or st["fds"] > max_fds: bad.append("fds %d/%d" % (fds, st["fds"]))
    if maps > max_handles or st["mappings"] > max_handles: bad.append("maps %d" % maps)
    if st["mapped_bytes"] > max_mapped: bad.append("mapped %d" % st["mapped_bytes"])
    if nbytes > max_mapped + max_handles * page: bad.append("vma bytes %d" % nbytes)
    # The daemon's peaks cover the instants between samples too.
    if st["peak_mappings"] > max_handles or st["peak_mapped_bytes"] > max_mapped \
            or st["peak_fds"] > max_fds:
        bad.append("peak %d/%d/%d" % (st["peak_mappings"], st["peak_mapped_bytes"],
                                      st["peak_fds"]))
    time.sleep(1)
third = max(1, len(rss) // 3)
first, last = max(rss[:third]), max(rss[-third:])
print("samples: %d" % len(rss))
for k in sorted(peaks):
    print("max %-17s %d" % (k, peaks[k]))
print("rss first third max %d KiB, last third max %d KiB" % (first, last))
print("final stats: " + " ".join("%s=%d" % kv for kv in sorted(st.items())))
if bad:
    print("BOUND CROSSED: %s" % bad[:10]); sys.exit(1)
if last > first * 1.2 and last - first > 8192:
    print("RSS GREW WITHOUT BOUND"); sys.exit(1)
EOF
wait "${pids[@]}" 2>/dev/null || true
pids=()
echo "churn rounds: $(cat "$work/churn.rounds" 2>/dev/null || echo ?)"
for j in small large; do
	{ grep -E "READ: bw=|err=|error" "$work/fio-$j.log" || tail -3 "$work/fio-$j.log"; } |
		head -3 | sed "s/^/fio $j: /"
done
if [ -s "$work/daemon.log" ]; then
	echo "daemon log ($(wc -l <"$work/daemon.log") lines, last 5):"
	tail -5 "$work/daemon.log"
fi
[ ! -s "$work/hangs" ] || { echo "reads hung: $(wc -l <"$work/hangs")"; status=1; }
kill -0 "$daemon" 2>/dev/null || { echo "the daemon died"; exit 1; }
fusermount3 -u "$mnt"
wait "$daemon" || { echo "the daemon exited non-zero"; exit 1; }
[ $status -eq 0 ] && echo "soak passed: no bound crossed, memory stable" || exit 1
