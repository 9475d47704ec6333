#!/usr/bin/env python3
"""SOURCE churning under load (issue "Reliability and security").

While clients read through the mount - fio (random O_DIRECT reads and
buffered sequential reads, time-limited), Python threads (random preads,
page cache dropped half the time), `cat` and `dd iflag=direct` loops -
another process (this script with --churner) changes SOURCE: truncates and
extends files in place, rewrites them in place, replaces them by rename,
deletes and recreates them, for at least 200 rounds.

Every version ever written to a name has content pattern(size, salt): a
prefix of one deterministic stream per version, so any range a client gets
back can be checked against every version at that offset.  The churner
writes each version to a journal before it touches the file.  A read must
return bytes of some version of the file (several versions side by side
are allowed where pages were cached or rewritten at different times), a
short read, or EIO / ENOENT / ESTALE - never other bytes, never another
errno, and never block longer than the deadline.

One exception, bounded: zeros within one READ (1 MiB) after a size the
file had, when a read races an in-place change of the file's end.  The
page holding an end of file is zero past it (a truncate zeroes its tail,
and a write extending the file fills it in order, so a read racing either
sees that tail as any mmap reader of the file would - a local read(2) can
in the same race), and the client's kernel zero-fills the rest of a READ
answered short and may keep those pages while the file grows back.  The
churner journals every size it gives a file, so zeros are accepted only
right after such an end: starting at it, at a page boundary, or reaching
back to it through zeros.  Zeros anywhere else, or any other bytes, fail.  Afterwards (past the
attribute and entry timeouts) every file reads back exactly as SOURCE has
it, the daemon is alive, within its bounds, and unmounts with exit 0.

Two mounts: 64K windows with few handles and descriptors (default
timeouts), and whole-file mappings with max_mapped smaller than the sum of
the files and zero timeouts.
"""
import errno
import json
import os
import random
import subprocess
import sys
import threading
import time

from smmapfs_test import (PAGE, Mount, check, check_eq, check_stats_bounds,
                          log, main, pattern, scratch, variant_scale,
                          write_file)

MAXSIZE = 256 * 1024
STABLE = ["a0", "a1", "a2", "a3"]     # never absent (fio reads them)
VOLATILE = ["b0", "b1", "b2", "b3"]   # also deleted and recreated
NAMES = STABLE + VOLATILE
SALT0 = 5_000_000
ALLOWED_ERRNOS = {errno.EIO, errno.ENOENT, errno.ESTALE}
ERR_WORDS = ("Input/output error", "No such file", "Stale file handle")
DEADLINE = variant_scale(10, 30)      # no read may block longer
MIN_ROUNDS = 200
PHASE_SECONDS = variant_scale(25, 20)


def stream_of(version, cache={}):  # noqa: B006 - a deliberate cache
    s = cache.get(version)
    if s is None:
        s = cache[version] = pattern(MAXSIZE, SALT0 + version)
    return s


# ---------------------------------------------------------------------------
# the churner (a separate process)
# ---------------------------------------------------------------------------

def churner(src, journal, seconds, min_rounds, seed):
    rnd = random.Random(seed)
    jf = open(journal, "a")
    state = {}  # name -> (version, size) or None when absent
    next_version = [1000]
    counts = {}

    def note(name, version):
        jf.write("%s %d\n" % (name, version))
        jf.flush()

    def note_end(name, size):
        """Journal a size the file is about to have (an end of file)."""
        jf.write("%s end %d\n" % (name, size))
        jf.flush()

    def new_version():
        next_version[0] += 1
        return next_version[0]

    with open(journal + ".init") as f:
        init = json.load(f)
    for name in NAMES:
        state[name] = (init[name], os.path.getsize(os.path.join(src, name)))
    t0 = time.monotonic()
    rounds = 0
    while rounds < min_rounds or time.monotonic() - t0 < seconds:
        name = rnd.choice(NAMES)
        path = os.path.join(src, name)
        cur = state[name]
        low = 65536 if name in STABLE else 0
        if cur is None:
            op = "recreate"
        else:
            ops = ["truncate", "extend", "rewrite", "replace"]
            if name in VOLATILE:
                ops.append("delete")
            op = rnd.choice(ops)
        if op == "truncate":
            v, size = cur
            new = rnd.randint(low, max(low, size))
            note_end(name, new)
            os.truncate(path, new)
            state[name] = (v, new)
        elif op == "extend":
            v, size = cur
            new = rnd.randint(size, MAXSIZE)
            note_end(name, new)
            with open(path, "r+b") as f:
                f.seek(size)
                f.write(stream_of(v)[size:new])
            state[name] = (v, new)
        elif op == "rewrite":
            # In place, same inode: page by page readers may see both.
            _, size = cur
            w = new_version()
            note(name, w)
            new = rnd.choice((size, rnd.randint(low, MAXSIZE)))
            note_end(name, new)
            with open(path, "r+b") as f:
                data = stream_of(w)[:new]
                for i in range(0, new, 65536):
                    f.write(data[i:i + 65536])
                f.truncate(new)
            state[name] = (w, new)
        elif op in ("replace", "recreate"):
            w = new_version()
            note(name, w)
            new = rnd.randint(low, MAXSIZE)
            note_end(name, new)
            if op == "replace":
                tmp = os.path.join(src, ".tmp-" + name)
                write_file(tmp, stream_of(w)[:new])
                os.rename(tmp, path)
            else:
                write_file(path, stream_of(w)[:new])
            state[name] = (w, new)
        elif op == "delete":
            os.unlink(path)
            state[name] = None
        counts[op] = counts.get(op, 0) + 1
        rounds += 1
        time.sleep(rnd.uniform(0, 0.05))
    jf.close()
    print(json.dumps({"rounds": rounds, "ops": counts,
                      "seconds": time.monotonic() - t0}))


# ---------------------------------------------------------------------------
# checking what clients read
# ---------------------------------------------------------------------------

class Versions:
    """Versions ever written per name, from the churner's journal."""

    def __init__(self, journal):
        self.journal = journal
        self.pos = 0
        self.by_name = {n: set() for n in NAMES}
        self.ends = {n: set() for n in NAMES}  # sizes each file had
        self.lock = threading.Lock()

    def add(self, name, v, size):
        self.by_name[name].add(v)
        self.ends[name].add(size)

    def refresh(self):
        with self.lock:
            with open(self.journal) as f:
                f.seek(self.pos)
                chunk = f.read()
                # Only whole lines.
                cut = chunk.rfind("\n") + 1
                self.pos += cut
            for line in chunk[:cut].splitlines():
                words = line.split()
                if words[1] == "end":
                    self.ends[words[0]].add(int(words[2]))
                else:
                    self.by_name[words[0]].add(int(words[1]))

    def whence(self, data):
        """Where the first bytes of `data` come from, for the report."""
        probe = data[:64]
        if len(probe) < 16:
            return "too short to trace"
        found = []
        with self.lock:
            owners = [(v, n) for n, vs in self.by_name.items() for v in vs]
        for v, n in sorted(owners):
            i = stream_of(v).find(probe)
            if i >= 0:
                found.append("version %d of %s at offset %d" % (v, n, i))
        return ("first bytes are " + ", ".join(found)) if found else \
            "first bytes match no version of any file"

    def of(self, name):
        with self.lock:
            return sorted(self.by_name[name])

    def ends_of(self, name):
        with self.lock:
            return set(self.ends[name])


def run_length(data, p, stream, off):
    """Length of the common prefix of data[p:] and stream[off + p:]."""
    n = min(len(data) - p, len(stream) - off - p)
    if n <= 0:
        return 0
    lo, hi = 0, n  # binary search on slice equality
    if data[p:p + n] == stream[off + p:off + p + n]:
        return n
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if data[p:p + mid] == stream[off + p:off + p + mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


# Zeros an end of file may leave: at most one READ request (1 MiB, the
# largest the kernel sends) past it.
MAX_ZERO_RUN = (1 << 20) + PAGE


def end_zeros(data, p, off, ends):
    """Length of the zeros at data[p:] if an end of file explains them: the
    run lies within MAX_ZERO_RUN after a size the file had, ends at a page
    boundary or at the end of the data, and starts at that end, at a page
    boundary (pages the kernel zero-filled), or reaches back to the end
    through zeros (the read started inside the run, or bytes of a version
    that happen to be zero came first).  0 otherwise."""
    start = off + p
    z = len(data) - p - len(data[p:].lstrip(b"\0"))
    if z == 0:
        return 0
    end = start + z
    if end % PAGE != 0 and p + z != len(data):
        return 0
    for e in ends:
        if e <= start and end - e <= MAX_ZERO_RUN and \
                (start % PAGE == 0 or not any(data[max(e - off, 0):p])):
            return z
    return 0


def classify(data, off, versions, ends=frozenset()):
    """'exact', 'empty', 'mixed' (n segments), 'end-zeros' (mixed with a
    run of zeros an end of file explains) or None (garbage)."""
    if not data:
        return "empty", 0
    if off + len(data) > MAXSIZE:
        return None, 0
    streams = [stream_of(v) for v in versions]
    for s in streams:
        if s[off:off + len(data)] == data:
            return "exact", 1
    # Greedy cover with runs of versions (optimal for prefix-closed runs).
    p, segments, zeroed = 0, 0, False
    limit = 1 + 2 * (len(data) // PAGE + 2)
    while p < len(data):
        best = max(run_length(data, p, s, off) for s in streams)
        zeros = end_zeros(data, p, off, ends) if data[p] == 0 else 0
        if zeros > best:
            best, zeroed = zeros, True
        if best == 0:
            return None, segments
        p += best
        segments += 1
        if segments > limit:
            return None, segments
    return ("end-zeros" if zeroed else "mixed"), segments


def zero_hint(data, off, vs):
    """Say so when what no version explains is zeros.  Within one page:
    the tail of the page holding a new end of file, which a mapping shows
    as zeros (truncate zeroes it) where read(2) would stop short.  Over
    several pages: pages the client's kernel zero-filled after a short READ
    reply and kept although the file had grown meanwhile."""
    best = max((run_length(data, 0, stream_of(v), off), v) for v in vs)
    rest = data[best[0]:]
    zeros = len(rest) - len(rest.lstrip(b"\0"))
    if zeros < 16:
        return ""
    start = off + best[0]
    stop = start + zeros
    if stop <= (start // PAGE + 1) * PAGE:
        why = "the tail of one page (a truncated page served from a mapping)"
    else:
        why = ("%d pages (zero-filled by the client's kernel after a short "
               "read, kept while the file grew)"
               % ((stop - 1) // PAGE - start // PAGE + 1))
    return ("; bytes %d..%d are zeros after version %d's bytes: %s"
            % (start, stop, best[1], why))


def zero_runs(data, off, ends):
    """The runs of 16+ zeros in data, with the nearest end at or before."""
    out, i = [], 0
    while i < len(data):
        if data[i] != 0:
            i += 1
            continue
        j = i
        while j < len(data) and data[j] == 0:
            j += 1
        if j - i >= 16:
            below = [c for c in ends if c <= off + i]
            out.append("[%d, %d) nearest end %s" % (
                off + i, off + j, max(below) if below else None))
        i = j
    return ("; zero runs: " + ", ".join(out[:6])) if out else ""


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {}
        self.bad = []
        self.max_latency = 0.0

    def add(self, what, n=1):
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + n

    def fail(self, msg):
        with self.lock:
            self.bad.append(msg)

    def latency(self, dt):
        with self.lock:
            self.max_latency = max(self.max_latency, dt)


def check_bytes(tally, versions, name, off, data, who):
    kind, seg = classify(data, off, versions.of(name), versions.ends_of(name))
    if kind is None:
        # The journal line may have landed after our look: once more.
        time.sleep(0.2)
        versions.refresh()
        kind, seg = classify(data, off, versions.of(name),
                             versions.ends_of(name))
    if kind is None:
        zeros = data.count(0)
        tally.fail("%s: garbage from %s at %d+%d (%d zero bytes, %d+ "
                   "segments, versions %s; %s%s%s)"
                   % (who, name, off, len(data), zeros, seg,
                      versions.of(name)[-6:], versions.whence(data),
                      zero_hint(data, off, versions.of(name)),
                      zero_runs(data, off, versions.ends_of(name))))
    else:
        tally.add(kind)


# ---------------------------------------------------------------------------
# clients
# ---------------------------------------------------------------------------

class Busy:
    """Start times of calls in progress, for the deadline watchdog."""

    def __init__(self):
        self.lock = threading.Lock()
        self.calls = {}

    def begin(self, key):
        with self.lock:
            self.calls[key] = time.monotonic()

    def end(self, key):
        with self.lock:
            t0 = self.calls.pop(key, None)
        return time.monotonic() - t0 if t0 else 0.0

    def overdue(self, limit):
        now = time.monotonic()
        with self.lock:
            return [(k, now - t) for k, t in self.calls.items()
                    if now - t > limit]


def py_reader(idx, mnt, versions, tally, busy, stop):
    rnd = random.Random(idx)
    while not stop.is_set():
        name = rnd.choice(NAMES)
        key = ("py", idx)
        busy.begin(key)
        try:
            fd = os.open(os.path.join(mnt, name), os.O_RDONLY)
            try:
                for _ in range(4):
                    off = rnd.randrange(0, MAXSIZE)
                    size = rnd.choice((1, 4096, 65536, 200000, MAXSIZE))
                    if rnd.random() < 0.5:
                        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                    data = os.pread(fd, size, off)
                    check_bytes(tally, versions, name, off, data, "pread")
            finally:
                os.close(fd)
        except OSError as e:
            if e.errno in ALLOWED_ERRNOS:
                tally.add(errno.errorcode[e.errno])
            else:
                tally.fail("pread %s: errno %s (%s)" % (name, e.errno,
                                                        e.strerror))
        finally:
            tally.latency(busy.end(key))


def tool_loop(kind, mnt, versions, tally, busy, stop, seed):
    rnd = random.Random(seed)
    while not stop.is_set():
        name = rnd.choice(NAMES)
        path = os.path.join(mnt, name)
        if kind == "cat":
            cmd, off = ["cat", path], 0
        else:
            skip = rnd.randrange(0, MAXSIZE // 65536)
            cmd = ["dd", "if=" + path, "bs=64K", "skip=%d" % skip,
                   "count=2", "iflag=direct", "status=none"]
            off = skip * 65536
        key = (kind, seed)
        busy.begin(key)
        try:
            p = subprocess.run(cmd, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            tally.fail("%s %s: no answer within %d s" % (kind, name,
                                                         DEADLINE))
            continue
        finally:
            tally.latency(busy.end(key))
        check_bytes(tally, versions, name, off, p.stdout, kind)
        if p.returncode != 0:
            err = p.stderr.decode(errors="replace")
            if any(w in err for w in ERR_WORDS):
                tally.add(kind + " error")
            else:
                tally.fail("%s %s: status %d: %s" % (kind, name,
                                                     p.returncode,
                                                     err.strip()[-300:]))


FIO_BURST = 3  # seconds per fio run


def fio_loop(mnt, tally, busy, stop, notes):
    """fio in bursts: a random O_DIRECT job and a buffered sequential job
    over the never-absent files.  fio stops a job at its first error (its
    continue_on_error mode trips an assertion of fio 3.33 on EIO): each
    run ends cleanly or with EIO/ENOENT/ESTALE, within its deadline."""
    files = ":".join(os.path.join(mnt, n) for n in STABLE)
    cmd = ["fio", "--readonly", "--ioengine=psync", "--time_based",
           "--runtime=%d" % FIO_BURST, "--filename=" + files,
           "--output-format=json",
           "--name=rand", "--rw=randread", "--bsrange=4k-64k", "--direct=1",
           "--name=seq", "--rw=read", "--bs=16k", "--direct=0"]
    while not stop.is_set():
        busy.begin("fio")
        try:
            p = subprocess.run(cmd, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               timeout=FIO_BURST + DEADLINE + 30)
        except subprocess.TimeoutExpired:
            tally.fail("fio: no end within %d s" % (FIO_BURST + DEADLINE))
            continue
        finally:
            tally.latency(max(0.0, busy.end("fio") - FIO_BURST))
        try:
            jobs = json.loads(p.stdout[p.stdout.index("{"):])["jobs"]
        except ValueError:
            tally.fail("fio status %d without a report: %s"
                       % (p.returncode, p.stderr[-500:]))
            continue
        for j in jobs:
            err = j["error"]
            notes["bytes"] = notes.get("bytes", 0) + j["read"]["io_bytes"]
            notes["max_lat"] = max(notes.get("max_lat", 0),
                                   j["read"]["lat_ns"]["max"] / 1e9)
            if err == 0:
                tally.add("fio run ok")
            elif err in ALLOWED_ERRNOS:
                tally.add("fio run " + errno.errorcode[err])
            else:
                tally.fail("fio job %s: error %s: %s"
                           % (j["jobname"], err, p.stderr[-300:]))


# ---------------------------------------------------------------------------
# the test
# ---------------------------------------------------------------------------

def churn_phase(label, opts, seed):
    with scratch("churn") as d:
        src = os.path.join(d, "src")
        os.makedirs(src)
        journal = os.path.join(d, "journal")
        versions = Versions(journal)
        rnd = random.Random(seed)
        init = {}
        for i, name in enumerate(NAMES):
            v = init[name] = i + 1
            size = rnd.randint(65536, MAXSIZE)
            write_file(os.path.join(src, name), stream_of(v)[:size])
            versions.add(name, v, size)
        with open(journal + ".init", "w") as f:
            json.dump(init, f)
        open(journal, "w").close()
        with Mount(src, os.path.join(d, "mnt"), opts) as m:
            tally, busy, stop = Tally(), Busy(), threading.Event()
            fio_notes = {}
            threads = [threading.Thread(target=py_reader,
                                        args=(i, m.mnt, versions, tally,
                                              busy, stop), daemon=True)
                       for i in range(4)]
            threads += [threading.Thread(target=tool_loop,
                                         args=(k, m.mnt, versions, tally,
                                               busy, stop, 100 + j),
                                         daemon=True)
                        for j, k in enumerate(("cat", "dd"))]
            threads.append(threading.Thread(
                target=fio_loop, args=(m.mnt, tally, busy, stop, fio_notes),
                daemon=True))
            for t in threads:
                t.start()
            ch = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "--churner",
                 src, journal, str(PHASE_SECONDS), str(MIN_ROUNDS),
                 str(seed)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True)
            try:
                overdue = []
                while ch.poll() is None:
                    versions.refresh()
                    overdue = busy.overdue(DEADLINE)
                    if overdue or not m.alive():
                        break
                    time.sleep(0.1)
                check(not overdue, "%s: reads blocked longer than %d s: %s"
                      % (label, DEADLINE, overdue))
                check(m.alive(), "%s: the daemon died:\n%s"
                      % (label, m.log_text()[-3000:]))
                out, err = ch.communicate(timeout=120)
                check_eq(ch.returncode, 0, "churner status (%s)" % err)
                churn = json.loads(out)
            finally:
                if ch.poll() is None:
                    ch.kill()
                    ch.wait()
                stop.set()
            versions.refresh()
            for t in threads:
                t.join(DEADLINE * 3 + FIO_BURST)
            check(not any(t.is_alive() for t in threads),
                  "%s: client threads did not stop" % label)
            fio_note = "%d MiB, max latency %.2f s" % (
                fio_notes.get("bytes", 0) >> 20, fio_notes.get("max_lat", 0))
            check(fio_notes.get("bytes", 0) > 0, "%s: fio read nothing"
                  % label)
            log("%s: %d rounds survived in %.0f s, ops %s" %
                (label, churn["rounds"], churn["seconds"], churn["ops"]))
            log("%s: outcomes %s; max client latency %.2f s; fio: %s"
                % (label, dict(sorted(tally.counts.items())),
                   tally.max_latency, fio_note))
            check(not tally.bad, "%s: %d bad reads:\n  %s"
                  % (label, len(tally.bad), "\n  ".join(tally.bad[:10])))
            check(churn["rounds"] >= MIN_ROUNDS, "only %d rounds"
                  % churn["rounds"])
            check(tally.counts.get("exact", 0) > 100,
                  "%s: few correct reads: %s" % (label, tally.counts))
            # Quiet now: past the timeouts every name reads back exactly
            # as SOURCE has it, with a fresh open.
            time.sleep(1.5)
            st = m.stats()
            check_stats_bounds(st)
            check_eq(sorted(os.listdir(m.mnt)), sorted(os.listdir(src)),
                     "%s: names after the churn" % label)
            for name in NAMES:
                sp = os.path.join(src, name)
                if not os.path.exists(sp):
                    try:
                        os.stat(m.path(name))
                        raise AssertionError("%s: deleted %s still there"
                                             % (label, name))
                    except FileNotFoundError:
                        continue
                with open(sp, "rb") as f:
                    want = f.read()
                with open(m.path(name), "rb") as f:
                    got = f.read()
                check(got == want, "%s: %s differs after the churn "
                      "(%d vs %d bytes)" % (label, name, len(got),
                                            len(want)))
                check_eq(os.stat(m.path(name)).st_size, len(want),
                         "%s: size of %s" % (label, name))
            log("%s: after the churn all files read back as SOURCE; stats "
                "changes=%d invalidations=%d reply_faults=%d retired=%d "
                "fallback_reads=%d errors=%d" %
                (label, st["changes"], st["invalidations"],
                 st["reply_faults"], st.get("retired", -1),
                 st["fallback_reads"], st["errors"]))
            check(m.alive(), "daemon died")


def test_churn_windows():
    churn_phase("64K windows", {"window_size": "64K", "max_handles": 6,
                                "max_fds": 3}, seed=1)


def test_churn_whole_files_no_cache():
    churn_phase("whole files, timeouts 0",
                {"window_size": 0, "max_mapped": "512K", "max_handles": 4,
                 "max_fds": 2, "attr_timeout": 0, "entry_timeout": 0},
                seed=2)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--churner":
        churner(sys.argv[2], sys.argv[3], float(sys.argv[4]),
                int(sys.argv[5]), int(sys.argv[6]))
        sys.exit(0)
    main([test_churn_windows, test_churn_whole_files_no_cache])
