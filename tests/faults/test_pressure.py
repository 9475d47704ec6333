#!/usr/bin/env python3
"""Resource pressure (issue "Reliability and security").

* RLIMIT_NOFILE tiny for the daemon (prlimit --nofile=N:N): for every N
  from 3 up, the daemon either refuses to start (one line, non-zero exit,
  nothing mounted) or mounts AND serves every read of 16 concurrent clients
  correctly and unmounts with exit 0 - never "mounted but failing" (EMFILE
  to clients) or crashing.  The daemon needs 0, 1, 2, /dev/fuse, SOURCE's
  root and max_fds descriptors: the smallest N that works must be at most
  5 + max_fds.  Tried with max_fds=1 and the default max_fds=16.
* Tight limits with 32 clients at once (threads on the same and on
  different files, reads up to 1 MiB, page cache dropped before each read
  so that the daemon serves them): max_handles=1 and max_fds=1 with 64K
  windows; whole-file mappings (window_size=0) with max_mapped smaller than
  the big files (those are read with pread); a mixed setting.  Every byte
  read is checked; statistics (check_stats_bounds), /proc/PID/fd and
  /proc/PID/maps are sampled during the run and never exceed the bounds.
"""
import os
import random
import threading
import time

from smmapfs_test import (PAGE, Mount, check, check_eq, check_stats_bounds,
                          is_mounted, log, main, pattern, scratch,
                          smmapfs_bin, variant_scale, write_file)

SLOW = variant_scale(1, 3)
RESERVED_FDS = 5  # 0, 1, 2, /dev/fuse, SOURCE's root (fs.h, design.md)


def make_source(d):
    src = os.path.join(d, "src")
    os.makedirs(src)
    files = {}
    sizes = [(1 << 20) + 4097, (1 << 20) - 1, 700001, 600000,
             200000, 200001, 131072, 65537, 5000, 4096, 1, 0]
    for i, size in enumerate(sizes):
        name = "f%02d" % i
        files[name] = pattern(size, 1000 + i)
        write_file(os.path.join(src, name), files[name])
    return src, files


def nofile_wrapper(d, n):
    w = os.path.join(d, "smmapfs-nofile-%d" % n)
    with open(w, "w") as f:
        f.write("#!/bin/sh\nexec prlimit --nofile=%d:%d %s \"$@\"\n"
                % (n, n, smmapfs_bin()))
    os.chmod(w, 0o755)
    return w


class Clients:
    """Threads reading through the mount, every byte checked."""

    def __init__(self, mnt, files, threads, hot="f00", seconds=4.0,
                 drop_cache=True):
        self.mnt, self.files = mnt, files
        self.names = sorted(files)
        self.hot = hot
        self.seconds = seconds
        self.drop = drop_cache
        self.lock = threading.Lock()
        self.reads = 0
        self.bytes = 0
        self.bad = []
        self.busy = {}
        self.max_latency = 0.0
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.body, args=(i,),
                                         daemon=True)
                        for i in range(threads)]

    def start(self):
        self.t0 = time.monotonic()
        for t in self.threads:
            t.start()
        return self

    def body(self, idx):
        rnd = random.Random(idx * 7919)
        end = time.monotonic() + self.seconds
        while time.monotonic() < end and not self.stop.is_set():
            # Half the clients share one file, half roam.
            name = self.hot if idx % 2 == 0 else rnd.choice(self.names)
            data = self.files[name]
            t0 = time.monotonic()
            self.busy[idx] = t0
            try:
                fd = os.open(os.path.join(self.mnt, name), os.O_RDONLY)
                try:
                    for _ in range(3):
                        off = rnd.randrange(0, len(data) + 1)
                        size = rnd.choice((1, 4096, 65536, 200000, 1 << 20))
                        if self.drop:
                            os.posix_fadvise(fd, 0, 0,
                                             os.POSIX_FADV_DONTNEED)
                        got = os.pread(fd, size, off)
                        ok = got == data[off:off + size]
                        with self.lock:
                            self.reads += 1
                            self.bytes += len(got)
                            if not ok:
                                self.bad.append((name, off, size, len(got)))
                finally:
                    os.close(fd)
            except OSError as e:
                with self.lock:
                    self.bad.append((name, "errno", e.errno, e.strerror))
                time.sleep(0.01)
            finally:
                self.busy.pop(idx, None)
                with self.lock:
                    self.max_latency = max(self.max_latency,
                                           time.monotonic() - t0)

    def hung(self, limit):
        now = time.monotonic()
        return [i for i, t0 in list(self.busy.items()) if now - t0 > limit]

    def running(self):
        return any(t.is_alive() for t in self.threads)

    def join(self, timeout):
        end = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.1, end - time.monotonic()))
        check(not self.running(), "clients still blocked after %s s"
              % timeout)


def try_nofile(d, src, files, n, max_fds):
    """Start the daemon with RLIMIT_NOFILE n: ('refused', line),
    ('works', detail) or ('BROKEN', why) for anything in between."""
    try:
        return try_nofile_once(d, src, files, n, max_fds)
    except AssertionError as e:
        return "BROKEN", str(e).splitlines()[0][:300]


def try_nofile_once(d, src, files, n, max_fds):
    mnt = os.path.join(d, "mnt-%d-%d" % (max_fds, n))
    saved = os.environ.get("SMMAPFS_BIN")
    os.environ["SMMAPFS_BIN"] = nofile_wrapper(d, n)
    try:
        m = Mount(src, mnt, {"max_fds": max_fds, "window_size": "64K"},
                  wait=False)
    finally:
        os.environ["SMMAPFS_BIN"] = saved
    try:
        end = time.monotonic() + 20 * SLOW
        while not is_mounted(mnt) and m.proc.poll() is None and \
                time.monotonic() < end:
            time.sleep(0.05)
        if not is_mounted(mnt):
            rc = m.proc.wait(20 * SLOW)
            m.unmounted = True
            lines = [ln for ln in m.log_text().splitlines() if ln.strip()]
            check(rc != 0, "N=%d: exit 0 without mounting" % n)
            check_eq(len(lines), 1, "N=%d: refusal lines %r" % (n, lines))
            check(any(w in lines[0] for w in ("Too many open files",
                                              "Error 24", "RLIMIT_NOFILE")),
                  "N=%d: refusal does not name the limit: %s"
                  % (n, lines[0]))
            check("Linux 5.6" not in lines[0],
                  "N=%d: refusal blames the kernel: %s" % (n, lines[0]))
            return "refused", lines[0]
        c = Clients(mnt, files, threads=16, seconds=1.5 * SLOW).start()
        c.join(30 * SLOW)
        check(not c.bad, "N=%d max_fds=%d: mounted but reads fail: %s"
              % (n, max_fds, c.bad[:4]))
        check(c.reads > 0, "no reads")
        st = m.stats()
        check_stats_bounds(st, max_fds=max_fds)
        m.unmount()
        return "works", "%d reads, peak_fds %d" % (c.reads, st["peak_fds"])
    finally:
        if not m.unmounted:
            m.kill()


def test_tiny_rlimit_nofile():
    with scratch("press-nofile") as d:
        src, files = make_source(d)
        summary, problems = [], []
        for max_fds in (1, 16):
            smallest = None
            need = RESERVED_FDS + max_fds
            # From far below what is needed to a little above it.
            for n in list(range(3, 8)) + list(range(max(8, need - 2),
                                                    need + 3)):
                state, detail = try_nofile(d, src, files, n, max_fds)
                log("max_fds=%d RLIMIT_NOFILE=%d: %s (%s)"
                    % (max_fds, n, state, detail))
                if state == "works" and smallest is None:
                    smallest = n
                if state == "BROKEN":
                    problems.append("max_fds=%d N=%d: %s"
                                    % (max_fds, n, detail))
            if smallest is None or smallest > need:
                problems.append("max_fds=%d: smallest RLIMIT_NOFILE that "
                                "works is %s, want <= %d"
                                % (max_fds, smallest, need))
            summary.append("max_fds=%d: smallest RLIMIT_NOFILE %s (0,1,2,"
                           "/dev/fuse,root + max_fds = %d)"
                           % (max_fds, smallest, need))
        for s in summary:
            log(s)
        check(not problems, "neither refused cleanly nor working:\n  "
              + "\n  ".join(problems))


def stable(fn):
    """What two consecutive calls of fn() agree on (dict or set)."""
    a, b = fn(), fn()
    if isinstance(a, dict):
        return {k: v for k, v in a.items() if b.get(k) == v}
    return a & b


class Sampler:
    """Samples statistics, /proc/PID/fd and /proc/PID/maps in a thread."""

    def __init__(self, m, bounds):
        self.m = m
        self.bounds = bounds
        self.max = {"fds_total": 0, "source_fds": 0, "source_maps": 0,
                    "source_mapped": 0, "mapped_bytes": 0, "mappings": 0,
                    "fds": 0}
        self.samples = 0
        self.errors = []
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.body, daemon=True)

    def start(self):
        self.t.start()
        return self

    def body(self):
        b = self.bounds
        while not self.stop.is_set():
            try:
                st = self.m.stats()
                check_stats_bounds(st, **b)
                # /proc/PID/maps and /proc/PID/fd are not read atomically
                # (a mapping replaced between two read() calls can show
                # both the old and the new one): count what two
                # consecutive reads agree on.
                fds = stable(self.m.proc_fds)
                sfds = stable(self.m.source_fds)
                maps = stable(lambda: set(self.m.source_maps()))
                mapped = sum(hi - lo for lo, hi, _ in maps)
                cur = {"fds_total": len(fds), "source_fds": len(sfds),
                       "source_maps": len(maps), "source_mapped": mapped,
                       "mapped_bytes": st["mapped_bytes"],
                       "mappings": st["mappings"], "fds": st["fds"]}
                for k, v in cur.items():
                    self.max[k] = max(self.max[k], v)
                check(len(sfds) <= b["max_fds"], "descriptors on SOURCE: "
                      "%d > max_fds %d: %s" % (len(sfds), b["max_fds"],
                                               sfds))
                check(len(fds) <= RESERVED_FDS + b["max_fds"],
                      "daemon descriptors %d > %d: %s"
                      % (len(fds), RESERVED_FDS + b["max_fds"], fds))
                check(len(maps) <= b["max_handles"],
                      "mappings of SOURCE files %d > max_handles %d"
                      % (len(maps), b["max_handles"]))
                # (whole pages: a partial last page per mapping may stick
                # out, see test_partial_pages_accounting)
                check(mapped <= b["max_mapped"] + len(maps) * (PAGE - 1),
                      "bytes mapped from SOURCE %d > max_mapped %d"
                      % (mapped, b["max_mapped"]))
                self.samples += 1
            except AssertionError as e:
                self.errors.append(str(e))
            except OSError as e:
                self.errors.append("sampling: %s" % e)
            time.sleep(0.02)

    def finish(self):
        self.stop.set()
        self.t.join(30)
        check(not self.errors, "bounds exceeded (%d samples): %s"
              % (len(self.errors), self.errors[:3]))
        check(self.samples >= 10, "only %d samples" % self.samples)


CONFIGS = [
    ("max_handles=1,max_fds=1 (64K windows)",
     {"window_size": "64K", "max_handles": 1, "max_fds": 1,
      "max_mapped": "64K"},
     {"max_handles": 1, "max_fds": 1, "max_mapped": 65536}),
    ("whole files, max_mapped < big files",
     {"window_size": 0, "max_mapped": "256K", "max_handles": 3,
      "max_fds": 1},
     {"max_handles": 3, "max_fds": 1, "max_mapped": 256 << 10}),
    ("mixed: 4K windows, max_handles=4, max_fds=2",
     {"window_size": "4K", "max_handles": 4, "max_fds": 2,
      "max_mapped": "16K"},
     {"max_handles": 4, "max_fds": 2, "max_mapped": 16 << 10}),
]


def test_tight_limits_many_clients():
    seconds = variant_scale(8.0, 6.0)
    with scratch("press-tight") as d:
        src, files = make_source(d)
        for label, opts, bounds in CONFIGS:
            mnt = os.path.join(d, "mnt-%d" % CONFIGS.index(
                (label, opts, bounds)))
            with Mount(src, mnt, opts) as m:
                s = Sampler(m, bounds).start()
                c = Clients(mnt, files, threads=32, seconds=seconds).start()
                while c.running():
                    hung = c.hung(15 * SLOW)
                    check(not hung, "%s: %d reads blocked > %d s"
                          % (label, len(hung), 15 * SLOW))
                    check(m.alive(), "%s: daemon died" % label)
                    time.sleep(0.1)
                c.join(30 * SLOW)
                s.finish()
                st = m.stats()
                check(not c.bad, "%s: bad reads: %s" % (label, c.bad[:5]))
                check(c.reads >= 64, "%s: only %d reads" % (label, c.reads))
                check_stats_bounds(st, **bounds)
                if opts["window_size"] == 0:
                    check(st["fallback_reads"] > 0,
                          "%s: files over max_mapped not read by pread"
                          % label)
                log("%s: %d reads (%d MiB) by 32 clients, max latency "
                    "%.2f s; %d samples, maxima %s; peaks: mapped %d/%d, "
                    "mappings %d/%d, fds %d/%d; fallback_reads %d, "
                    "fd_waits %d, limit_refusals %d"
                    % (label, c.reads, c.bytes >> 20, c.max_latency,
                       s.samples, s.max, st["peak_mapped_bytes"],
                       st["max_mapped"], st["peak_mappings"],
                       st["max_handles"], st["peak_fds"], st["max_fds"],
                       st["fallback_reads"], st.get("fd_waits", -1),
                       st.get("limit_refusals", -1)))
                # After the storm every file still reads back whole.
                for name, data in files.items():
                    with open(m.path(name), "rb") as f:
                        check(f.read() == data, "%s: %s after" % (label,
                                                                  name))
            check_eq(os.listdir(mnt), [], "unmounted")


def test_partial_pages_accounting():
    """mapped_bytes counts the bytes of the windows (clamped to the end of
    file), as the library's unit tests define it; mmap maps whole pages, so
    the address space mapped may exceed max_mapped by less than a page per
    mapping - never more.  4 files of 5000, 4096, 1 and 2000 bytes against
    max_mapped=12K (3 pages; the VMAs are 5 pages)."""
    with scratch("press-pages") as d:
        src = os.path.join(d, "src")
        os.makedirs(src)
        files = {"a": pattern(5000, 1), "b": pattern(4096, 2),
                 "c": pattern(1, 3), "e": pattern(2000, 4)}
        for name, data in files.items():
            write_file(os.path.join(src, name), data)
        bounds = {"max_mapped": 12288, "max_handles": 8, "max_fds": 2}
        with Mount(src, os.path.join(d, "mnt"),
                   {"window_size": 0, "max_mapped": "12K", "max_handles": 8,
                    "max_fds": 2}) as m:
            worst = 0
            for name, data in sorted(files.items()):
                with open(m.path(name), "rb") as f:
                    check_eq(f.read(), data, name)
                maps = stable(lambda: set(m.source_maps()))
                vma = sum(hi - lo for lo, hi, _ in maps)
                content = sum(min(hi - lo, len(files[os.path.basename(p)]))
                              for lo, hi, p in maps)
                st = m.stats()
                worst = max(worst, vma - bounds["max_mapped"])
                log("after %s: %d mappings, VMAs %d bytes, content %d, "
                    "mapped_bytes=%d, max_mapped=%d"
                    % (name, len(maps), vma, content, st["mapped_bytes"],
                       st["max_mapped"]))
                check_stats_bounds(st, **bounds)
                check_eq(st["mapped_bytes"], content,
                         "mapped_bytes vs the bytes of the mapped files")
                check(vma <= bounds["max_mapped"] + len(maps) * (PAGE - 1),
                      "%d bytes of VMAs: more than max_mapped=%d plus a "
                      "partial page per mapping" % (vma, bounds["max_mapped"]))
            log("address space over max_mapped at worst: %d bytes "
                "(partial last pages)" % max(0, worst))


if __name__ == "__main__":
    main([test_tight_limits_many_clients, test_partial_pages_accounting,
          test_tiny_rlimit_nofile])
