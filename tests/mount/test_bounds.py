#!/usr/bin/env python3
"""Bounded resources, the point of the project.

Thousands of files are opened through the mount AT ONCE (far more than
max_handles and max_fds), read completely (contents compared), then read at
random by 16 threads while every file stays open.  A sampler thread looks
at the daemon every ~20 ms during all of it:

  * descriptors on files beneath SOURCE <= max_fds (the harness's
    source_fds(), and also every descriptor on SOURCE's root beyond the
    permanent O_PATH one: an opendir of the root takes a slot too);
  * all descriptors of the daemon <= max_fds + FIXED, FIXED = 5: stdin,
    stdout, stderr, one /dev/fuse (no clone_fd), the O_PATH descriptor of
    SOURCE's root (checked: at idle the daemon holds exactly these);
  * mappings of SOURCE files in /proc/PID/maps: distinct VMAs <=
    max_handles, total VMA bytes <= max_mapped + max_handles * (PAGE - 1).
    The library counts exact mapping lengths against max_mapped, while the
    kernel rounds each mapping up to whole pages: every one of at most
    max_handles mappings may add up to PAGE - 1 bytes.  (Adjacent windows of
    one file may merge into one VMA: that lowers the count, never the
    bytes.);
  * the statistics (check_stats_bounds), limits as configured.

/proc/PID/fd and /proc/PID/maps are read in chunks, each under its own
lock, so a daemon mapping and unmapping meanwhile could be seen twice:
each sample is therefore taken with the daemon stopped (SIGSTOP, wait until
every thread is stopped, read, SIGCONT): an exact snapshot.  Statistics
are read right after (the stopped daemon could not answer).

Runs: max_handles=32, max_fds=4, max_mapped=8M with window_size=256K and
with window_size=0 (whole files); max_fds=1 and max_handles=1 together
(reads still correct: waits and fallbacks; a 1 MiB O_DIRECT read across
windows must be served by the pread fallback), max_fds=1 alone; whole
files with max_mapped smaller than some files (those are served by pread:
fallback_bytes grows by their size, they never appear in /proc/PID/maps).
"""
import mmap
import os
import random
import resource
import signal
import threading
import time
import zlib

from smmapfs_test import (PAGE, Mount, check, check_eq, check_stats_bounds,
                          log, main, pattern, scratch, smmapfs_bin)

VARIANT = os.environ.get("SMMAP_TEST_VARIANT", "")
KiB, MiB = 1024, 1024 * 1024
N_FILES = 3000
READERS = 16
RANDOM_SECONDS = 2.0 if VARIANT else 4.0
SAMPLE_EVERY = 0.020
FIXED_FDS = 5   # 0, 1, 2, /dev/fuse, SOURCE's root (O_PATH)
DIRS = 30


def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))  # root
    elif soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


# ---------------------------------------------------------------------------
# SOURCE
# ---------------------------------------------------------------------------

def make_files(src, n, seed, big=()):
    """n files in DIRS directories; sizes from 0 to 1.2 MiB (many cross
    256K windows), plus `big` extra sizes.  Returns [(relpath, data)]."""
    rnd = random.Random(seed)
    out = []
    for i in range(n + len(big)):
        if i >= n:
            size = big[i - n]
        else:
            r = rnd.random()
            if r < 0.015:
                size = rnd.randrange(300 * KiB, 1200 * KiB)
            elif r < 0.10:
                size = rnd.randrange(32 * KiB, 300 * KiB)
            else:
                size = rnd.randrange(0, 32 * KiB)
        rel = os.path.join("d%02d" % (i % DIRS), "f%05d" % i)
        data = pattern(size, seed * 100000 + i)
        p = os.path.join(src, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
        out.append((rel, data))
    return out


# ---------------------------------------------------------------------------
# sampling the daemon
# ---------------------------------------------------------------------------

def task_states(pid):
    out = []
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                s = f.read()
        except OSError:
            continue   # the thread just exited
        out.append(s[s.rindex(")") + 2])
    return out


class Frozen:
    """The daemon stopped (every thread), for an exact /proc snapshot."""

    def __init__(self, pid, timeout=10.0):
        self.pid = pid
        self.timeout = timeout

    lock = threading.Lock()   # one freeze at a time (SIGCONT ends all)

    def __enter__(self):
        Frozen.lock.acquire()
        try:
            self._stop()
        except BaseException:
            Frozen.lock.release()
            raise
        return self

    def _stop(self):
        os.kill(self.pid, signal.SIGSTOP)
        end = time.monotonic() + self.timeout
        while True:
            st = task_states(self.pid)
            if all(s in "TtZX" for s in st):
                return
            if time.monotonic() > end:
                os.kill(self.pid, signal.SIGCONT)
                raise AssertionError("daemon threads did not stop: %s" % st)
            time.sleep(0.0005)

    def __exit__(self, *exc):
        try:
            os.kill(self.pid, signal.SIGCONT)
        finally:
            Frozen.lock.release()
        return False


def classify_fds(m):
    """(slot fds on SOURCE, all fds, fds on files beneath SOURCE, raw)."""
    src = os.path.realpath(m.source)
    fds = m.proc_fds()
    beneath = m.source_fds()
    roots = [fd for fd, t in fds.items() if t == src]
    # One root descriptor is the permanent O_PATH; more are slot holders.
    slots = len(beneath) + max(0, len(roots) - 1)
    return slots, len(fds), len(beneath), fds


class Sampler(threading.Thread):
    """Every SAMPLE_EVERY: a frozen snapshot of fds and maps, then stats."""

    def __init__(self, m, limits, forbidden=()):
        super().__init__(daemon=True)
        self.m = m
        self.limits = limits
        self.forbidden = set(forbidden)   # paths that must never be mapped
        self.stop_evt = threading.Event()
        self.violations = []
        self.samples = 0
        self.max = dict.fromkeys(
            ("slot_fds", "source_fds", "proc_fds", "vmas", "vma_bytes",
             "mapped_bytes", "mappings", "fds"), 0)
        self.bytes_bound = (limits["max_mapped"]
                            + limits["max_handles"] * (PAGE - 1))

    def violation(self, msg):
        if len(self.violations) < 50:
            self.violations.append(msg)

    def sample(self):
        m, lim = self.m, self.limits
        with Frozen(m.pid):
            slots, nfds, nbeneath, fds = classify_fds(m)
            maps = m.source_maps()
        vmas = {(lo, hi) for lo, hi, _ in maps}
        vbytes = sum(hi - lo for lo, hi in vmas)
        mx = self.max
        mx["slot_fds"] = max(mx["slot_fds"], slots)
        mx["source_fds"] = max(mx["source_fds"], nbeneath)
        mx["proc_fds"] = max(mx["proc_fds"], nfds)
        mx["vmas"] = max(mx["vmas"], len(vmas))
        mx["vma_bytes"] = max(mx["vma_bytes"], vbytes)
        if nbeneath > lim["max_fds"] or slots > lim["max_fds"]:
            self.violation("SOURCE fds %d (slots %d) > max_fds %d: %s"
                           % (nbeneath, slots, lim["max_fds"], fds))
        if nfds > lim["max_fds"] + FIXED_FDS:
            self.violation("daemon fds %d > max_fds %d + %d: %s"
                           % (nfds, lim["max_fds"], FIXED_FDS, fds))
        if len(vmas) > lim["max_handles"]:
            self.violation("%d SOURCE VMAs > max_handles %d"
                           % (len(vmas), lim["max_handles"]))
        if vbytes > self.bytes_bound:
            self.violation("SOURCE VMA bytes %d > %d (max_mapped %d + "
                           "page rounding)" % (vbytes, self.bytes_bound,
                                               lim["max_mapped"]))
        for _, _, path in maps:
            if path in self.forbidden:
                self.violation("%s is mapped (larger than max_mapped)"
                               % path)
        st = m.stats()
        mx["mapped_bytes"] = max(mx["mapped_bytes"], st["mapped_bytes"])
        mx["mappings"] = max(mx["mappings"], st["mappings"])
        mx["fds"] = max(mx["fds"], st["fds"])
        try:
            check_stats_bounds(st, **lim)
        except AssertionError as e:
            self.violation("stats: %s: %r" % (e, st))
        self.samples += 1

    def run(self):
        while not self.stop_evt.is_set():
            try:
                self.sample()
            except Exception as e:  # noqa: BLE001 - reported by finish()
                self.violation("sampler: %r" % e)
                if not self.m.alive():
                    return
            self.stop_evt.wait(SAMPLE_EVERY)

    def finish(self, what):
        self.stop_evt.set()
        self.join(30)
        check(not self.is_alive(), "sampler stuck")
        check(self.samples > 0, "no sample taken")
        check(not self.violations, "%s: bounds violated:\n%s"
              % (what, "\n".join(self.violations[:20])))


# ---------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------

def read_all(fd, size):
    chunks, off = [], 0
    while True:
        b = os.pread(fd, 1 << 20, off)
        if not b:
            break
        chunks.append(b)
        off += len(b)
        if off > size + (1 << 20):
            break
    return b"".join(chunks)


def full_reads(fds, files, nthreads=4):
    """Read every open file completely (in parallel); list of errors."""
    errors = []

    def work(k):
        for i in range(k, len(fds), nthreads):
            try:
                got = read_all(fds[i], len(files[i][1]))
            except OSError as e:
                errors.append("%s: %s" % (files[i][0], e))
                continue
            if got != files[i][1]:
                errors.append("%s: %d bytes read, %d expected, content %s"
                              % (files[i][0], len(got), len(files[i][1]),
                                 "differs" if len(got) == len(files[i][1])
                                 else "short/long"))
    ts = [threading.Thread(target=work, args=(k,)) for k in range(nthreads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return errors


LENGTHS = (1, 100, 4096, 5000, 65536, 200000, 300000, 1 << 20)


def random_reads(m, fds, files, seconds, readers=READERS):
    """READERS threads of random preads over the open files.  Some drop the
    file's page cache first (posix_fadvise) so the daemon serves them, some
    go through a fresh O_DIRECT descriptor.  Returns (errors, reads, bytes).
    """
    errors, counts = [], [0] * readers
    nbytes = [0] * readers
    deadline = time.monotonic() + seconds

    def work(k):
        rnd = random.Random(1000 + k)
        buf = mmap.mmap(-1, 1 << 20)
        while time.monotonic() < deadline and len(errors) < 20:
            i = rnd.randrange(len(fds))
            rel, data = files[i]
            off = rnd.randrange(len(data) + 1)
            ln = rnd.choice(LENGTHS)
            mode = rnd.random()
            try:
                if mode < 0.15:
                    dfd = os.open(m.path(rel), os.O_RDONLY | os.O_DIRECT)
                    try:
                        n = os.preadv(dfd, [memoryview(buf)[:ln]], off)
                    finally:
                        os.close(dfd)
                    got = bytes(buf[:n])
                else:
                    if mode < 0.5:
                        os.posix_fadvise(fds[i], 0, 0,
                                         os.POSIX_FADV_DONTNEED)
                    got = os.pread(fds[i], ln, off)
            except OSError as e:
                errors.append("%s @%d+%d: %s" % (rel, off, ln, e))
                continue
            if got != data[off:off + ln]:
                errors.append("%s @%d+%d: %d bytes, want %d, %s"
                              % (rel, off, ln, len(got),
                                 len(data[off:off + ln]), "content differs"))
            counts[k] += 1
            nbytes[k] += len(got)
        buf.close()
    ts = [threading.Thread(target=work, args=(k,)) for k in range(readers)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return errors, sum(counts), sum(nbytes)


def idle_fds_ok(m):
    """At idle the daemon holds exactly its FIXED descriptors."""
    with Frozen(m.pid):
        slots, nfds, nbeneath, fds = classify_fds(m)
    src = os.path.realpath(m.source)
    other = {fd: t for fd, t in fds.items()
             if fd > 2 and t != "/dev/fuse" and t != src}
    check(not other, "unexpected daemon descriptors: %s" % other)
    check_eq(sum(1 for t in fds.values() if t == "/dev/fuse"), 1,
             "/dev/fuse descriptors")
    check_eq(sum(1 for t in fds.values() if t == src), 1,
             "SOURCE root descriptors")
    check(nfds <= FIXED_FDS, "idle daemon holds %d fds: %s" % (nfds, fds))
    return slots, nbeneath, nfds


def wait_released(m, n=0, timeout=20):
    """FUSE release is asynchronous: wait until client_opens == n."""
    end = time.monotonic() + timeout
    while True:
        st = m.stats()
        if st["client_opens"] == n or time.monotonic() > end:
            return st
        time.sleep(0.05)


def limits_of(opts):
    def size(v):
        v = str(v)
        mult = {"K": KiB, "M": MiB, "G": 1024 * MiB}.get(v[-1:].upper(), 1)
        return int(v[:-1] if mult > 1 else v) * mult
    return {"max_mapped": size(opts["max_mapped"]),
            "max_handles": int(opts["max_handles"]),
            "max_fds": int(opts["max_fds"])}


def no_log_errors(m):
    bad = [ln for ln in m.log_text().splitlines()
           if "smmapfs:" in ln or "Sanitizer" in ln or "runtime error" in ln]
    check(not bad, "daemon logged:\n" + "\n".join(bad[:20]))


def exercise(tag, opts, nfiles, seconds=RANDOM_SECONDS, big=(),
             forbid_big=False, readers=READERS):
    """The scenario of this program with mount options `opts`."""
    lim = limits_of(opts)
    raise_nofile(nfiles + len(big) + 1024)
    with scratch("bounds-" + tag) as d:
        src = os.path.join(d, "src")
        os.makedirs(src)
        t0 = time.monotonic()
        files = make_files(src, nfiles, seed=zlib.crc32(tag.encode()) % 1000,
                           big=big)
        total = sum(len(x) for _, x in files)
        log("%s: %d files, %.1f MiB, largest %d bytes (%.1f s)"
            % (tag, len(files), total / MiB, max(len(x) for _, x in files),
               time.monotonic() - t0))
        forbidden = set()
        if forbid_big:
            forbidden = {os.path.join(os.path.realpath(src), r)
                         for r, x in files if len(x) > lim["max_mapped"]}
            check(forbidden, "no file larger than max_mapped")
        with Mount(src, os.path.join(d, "mnt"), opts) as m:
            st0 = m.stats()
            check_stats_bounds(st0, **lim)
            idle_fds_ok(m)
            sampler = Sampler(m, lim, forbidden)
            sampler.start()
            fds = []
            try:
                t0 = time.monotonic()
                for rel, _ in files:
                    fds.append(os.open(m.path(rel), os.O_RDONLY))
                t_open = time.monotonic() - t0
                # Every file is open through the mount, none is read yet.
                st = m.stats()
                check_eq(st["client_opens"], len(files), "client_opens")
                with Frozen(m.pid):
                    slots, _, nbeneath, dfds = classify_fds(m)
                check(nbeneath <= lim["max_fds"] and slots <= lim["max_fds"],
                      "%d files open, daemon holds %d SOURCE fds > max_fds"
                      % (len(files), nbeneath))
                log("%s: %d files open through the mount (%.1f s): daemon "
                    "holds %d SOURCE descriptors, %d in all, stats fds=%d"
                    % (tag, len(files), t_open, nbeneath, len(dfds),
                       st["fds"]))
                # Read each completely, all still open.
                t0 = time.monotonic()
                errs = full_reads(fds, files)
                check(not errs, "full reads:\n" + "\n".join(errs[:20]))
                st1 = m.stats()
                check(st1["read_bytes"] - st0["read_bytes"] >= total,
                      "daemon served %d bytes < %d (cold cache)"
                      % (st1["read_bytes"] - st0["read_bytes"], total))
                log("%s: read %d files completely, contents equal "
                    "(%.1f s)" % (tag, len(files), time.monotonic() - t0))
                # Random reads by many threads, all files still open.
                t0 = time.monotonic()
                errs, nreads, nbytes = random_reads(m, fds, files, seconds,
                                                    readers)
                check(not errs, "random reads:\n" + "\n".join(errs[:20]))
                st2 = m.stats()
                check(nreads > 0, "no random read done")
                check(st2["reads"] > st1["reads"],
                      "random reads never reached the daemon")
                log("%s: %d threads, %d random reads (%.1f MiB) correct in "
                    "%.1f s; daemon: %d reads, %.1f MiB served"
                    % (tag, readers, nreads, nbytes / MiB,
                       time.monotonic() - t0, st2["reads"] - st1["reads"],
                       (st2["read_bytes"] - st1["read_bytes"]) / MiB))
                # (the readers' own O_DIRECT opens are released async)
                check_eq(wait_released(m, len(files))["client_opens"],
                         len(files), "client_opens after reading")
            finally:
                for fd in fds:
                    os.close(fd)
                sampler.finish(tag)
            st = wait_released(m)
            check_eq(st["client_opens"], 0, "client_opens after close")
            check_stats_bounds(st, **lim)
            check_eq(st["errors"], 0, "daemon error replies")
            check_eq(st["fds"], 0, "SOURCE descriptors held at idle")
            idle_fds_ok(m)
            mx = sampler.max
            log("%s: %d samples; maxima seen: SOURCE fds %d (slots %d, "
                "max_fds %d), daemon fds %d (<= %d + %d), SOURCE VMAs %d "
                "(max_handles %d), VMA bytes %d (max_mapped %d, bound %d), "
                "stats mapped_bytes %d mappings %d fds %d"
                % (tag, sampler.samples, mx["source_fds"], mx["slot_fds"],
                   lim["max_fds"], mx["proc_fds"], lim["max_fds"], FIXED_FDS,
                   mx["vmas"], lim["max_handles"], mx["vma_bytes"],
                   lim["max_mapped"], sampler.bytes_bound,
                   mx["mapped_bytes"], mx["mappings"], mx["fds"]))
            log("%s: peaks: peak_mapped_bytes=%d peak_mappings=%d "
                "peak_fds=%d; hits=%d misses=%d evictions=%d "
                "limit_refusals=%d fd_waits=%d fallback_reads=%d "
                "fallback_bytes=%d reads=%d"
                % (tag, st["peak_mapped_bytes"], st["peak_mappings"],
                   st["peak_fds"], st["hits"], st["misses"], st["evictions"],
                   st["limit_refusals"], st["fd_waits"],
                   st["fallback_reads"], st["fallback_bytes"], st["reads"]))
            extra = {"files": files, "src": src}
            after(m, tag, lim, extra, st)
            no_log_errors(m)
            m.unmount()
            no_log_errors(m)
        return st


def after(m, tag, lim, extra, st):
    """Per-scenario checks with the mount still up (set by the tests)."""
    hook = _after.get(tag)
    if hook:
        hook(m, lim, extra, st)


_after = {}

BASE = {"max_handles": 32, "max_fds": 4, "max_mapped": "8M"}


def test_many_files_windows():
    """3000 files open at once; 256K windows; 32 mappings, 4 fds, 8M."""
    opts = dict(BASE, window_size="256K")
    st = exercise("windows", opts, N_FILES)
    check(st["evictions"] > 0, "no eviction under max_handles=32")


def test_many_files_whole():
    """3000 files open at once; whole-file mappings (window_size=0)."""
    opts = dict(BASE, window_size="0")
    st = exercise("whole", opts, N_FILES)
    check_eq(st["window_size"], 0, "window_size")
    check(st["evictions"] > 0, "no eviction under max_handles=32")


def direct_cross_window(m, extra, lim, st):
    """A 1 MiB O_DIRECT read across windows with max_handles=1: the daemon
    cannot pin the windows together, so pread must serve it."""
    rel, data = max(extra["files"], key=lambda f: len(f[1]))
    check(len(data) > MiB + 256 * KiB, "no file spans 5 windows")
    before = m.stats()
    fd = os.open(m.path(rel), os.O_RDONLY | os.O_DIRECT)
    buf = mmap.mmap(-1, MiB)
    try:
        off = 128 * KiB
        n = os.preadv(fd, [buf], off)
        check_eq(n, MiB, "O_DIRECT read length")
        check(bytes(buf[:n]) == data[off:off + n], "O_DIRECT content")
    finally:
        os.close(fd)
        buf.close()
    after_st = wait_released(m)
    check(after_st["fallback_reads"] > before["fallback_reads"],
          "a read spanning 5 windows with max_handles=1 was not a fallback")
    check(after_st["fallback_bytes"] - before["fallback_bytes"] >= MiB,
          "fallback_bytes did not grow by the read")
    check_stats_bounds(after_st, **lim)


def test_one_fd_one_handle():
    """max_fds=1, max_handles=1: reads wait or fall back, stay correct."""
    n = 400 if VARIANT else 800
    for window in ("256K", "0"):
        tag = "one-w" + window
        opts = {"max_handles": 1, "max_fds": 1, "max_mapped": "8M",
                "window_size": window}
        if window != "0":
            _after[tag] = lambda m, lim, extra, st: direct_cross_window(
                m, extra, lim, st)
        st = exercise(tag, opts, n, seconds=RANDOM_SECONDS / 2,
                      big=(3 * MiB,))
        check(st["peak_fds"] <= 1 and st["peak_mappings"] <= 1,
              "peaks over 1: %r" % st)
        check(st["fallback_reads"] > 0,
              "max_handles=1 and 16 readers, yet no fallback read")


def test_one_fd():
    """max_fds=1 alone: every lookup, mapping and fallback waits its turn."""
    opts = {"max_handles": 32, "max_fds": 1, "max_mapped": "8M",
            "window_size": "256K"}
    st = exercise("one-fd", opts, 400 if VARIANT else 800,
                  seconds=RANDOM_SECONDS / 2)
    check_eq(st["peak_fds"], 1, "peak_fds")


def test_max_mapped_below_file():
    """window_size=0, max_mapped=1M: bigger files are read by pread."""
    opts = {"max_handles": 32, "max_fds": 4, "max_mapped": "1M",
            "window_size": "0"}
    big = (3 * MiB + 123, MiB + 1, 2 * MiB)

    def hook(m, lim, extra, st):
        # Read the big files again, cold: every byte must come by pread.
        for rel, data in extra["files"]:
            if len(data) <= lim["max_mapped"]:
                continue
            before = m.stats()
            fd = os.open(m.path(rel), os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                got = read_all(fd, len(data))
            finally:
                os.close(fd)
            check(got == data, "%s: content differs" % rel)
            now = wait_released(m)
            grew = now["fallback_bytes"] - before["fallback_bytes"]
            check(now["fallback_reads"] > before["fallback_reads"],
                  "%s (%d bytes > max_mapped) not read by fallback"
                  % (rel, len(data)))
            check(grew >= len(data), "%s: fallback_bytes grew by %d < %d"
                  % (rel, grew, len(data)))
            check_stats_bounds(now, **lim)
            log("max-mapped: %s (%d bytes) served by %d fallback reads"
                % (rel, len(data),
                   now["fallback_reads"] - before["fallback_reads"]))
    _after["max-mapped"] = hook
    st = exercise("max-mapped", opts, 300 if VARIANT else 600, big=big,
                  forbid_big=True)
    check(st["misses"] > 0, "small files were never mapped")
    check(st["peak_mapped_bytes"] <= MiB, "peak over 1M")


if __name__ == "__main__":
    log("daemon: %s%s" % (smmapfs_bin(),
                          " (variant %s)" % VARIANT if VARIANT else ""))
    main([test_many_files_windows, test_many_files_whole,
          test_one_fd_one_handle, test_one_fd, test_max_mapped_below_file])
