#!/usr/bin/env python3
"""Coherence: SOURCE changing underneath the mount.

Files of SOURCE are extended, truncated (also under mappings the daemon
still holds), rewritten in place with the same size and mtime (only ctime
moves), replaced by rename, deleted while open, truncated under a client's
own mmap, and churned while readers read.  What a client may see:

* after the change is noticed (a lookup, getattr or open reaching the
  daemon: at once with entry/attr_timeout=0, after the timeout with the
  defaults, at every open in any case) the new size and the new bytes;
* on a descriptor open across a change: the old bytes, a short read or an
  error, never the new file's bytes mixed into the old one, never bytes
  beyond a new end that are the file's old bytes;
* a client's mmap beyond a new end: SIGBUS in the client;
* never a hang (every read runs with a time bound), never a dead daemon.
"""
import errno
import os
import random
import signal
import struct
import subprocess
import sys
import threading
import time

from smmapfs_test import (Mount, call_with_timeout, check, check_eq,
                          drop_page_cache, errno_of, log, main, pattern,
                          scratch, variant_scale, write_file)

READ_TIMEOUT = 30          # seconds any single read may take
# What a descriptor open across a change may get instead of bytes.
STALE_ERRORS = {errno.EIO, errno.ESTALE, errno.ENOENT}
FAST = {"entry_timeout": 0, "attr_timeout": 0, "window_size": "64K"}
DEFAULTS = {"window_size": "64K"}  # entry/attr_timeout 1 s


def tpread(fd, n, off):
    """pread bounded in time; returns bytes or the errno (int)."""
    try:
        return call_with_timeout(READ_TIMEOUT, os.pread, fd, n, off)
    except OSError as e:
        return e.errno


def tread_path(path):
    def rd():
        with open(path, "rb") as f:
            return f.read()
    return call_with_timeout(READ_TIMEOUT, rd)


def describe(got, want):
    """A read's outcome against what was wanted, for failure messages."""
    if isinstance(got, int):
        return "error " + errno.errorcode.get(got, str(got))
    n = min(len(got), len(want))
    first = next((i for i in range(n) if got[i] != want[i]), n)
    return "%d bytes (want %d), first difference at %d%s" % (
        len(got), len(want), first,
        ", zeros from there" if got[first:] == bytes(len(got) - first)
        else "")


def stat_delta(m, before, *keys):
    st = m.stats()
    return {k: st[k] - before[k] for k in keys}


def wait_for(cond, secs, step=0.05):
    end = time.monotonic() + secs
    while True:
        if cond():
            return True
        if time.monotonic() > end:
            return False
        time.sleep(step)


def check_truncated_read(got, new, old, what, offset=0):
    """A read (at `offset`) of a file truncated from `old` to `new`: an
    allowed error, or bytes that are the new content, with nothing but
    zeros past the new end (never the old bytes)."""
    if isinstance(got, int):
        check(got in STALE_ERRORS, "%s: error %s" % (what,
                                                       errno.errorcode[got]))
        return "error " + errno.errorcode[got]
    inside = max(0, min(len(got), len(new) - offset))
    check(got[:inside] == new[offset:offset + inside],
          "%s: bytes before the new end differ" % what)
    beyond = got[inside:]
    if beyond:
        check(beyond != old[offset + inside:offset + len(got)]
              or beyond == bytes(len(beyond)),
              "%s: %d old bytes past the new end" % (what, len(beyond)))
        check(beyond == bytes(len(beyond)),
              "%s: %d non-zero bytes past the new end" % (what, len(beyond)))
        return "%d bytes, %d zero past the end" % (len(got), len(beyond))
    return "%d bytes" % len(got)


# ---------------------------------------------------------------------------


def test_extended_file_seen():
    """A file extended in SOURCE: after getattr/open the new size and every
    new byte are seen (no stale short read from a window mapped for the
    old size: B12), at once without caching, after the timeout with the
    default timeouts."""
    with scratch("coherence-extend") as d:
        src = os.path.join(d, "src")
        os.makedirs(src)
        f = os.path.join(src, "f")
        a, b, c = pattern(100000, 1), pattern(200000, 2), pattern(70001, 3)
        write_file(f, a)
        with Mount(src, os.path.join(d, "mnt"), FAST) as m:
            fd = os.open(m.path("f"), os.O_RDONLY)
            check(tpread(fd, 1 << 20, 0) == a, "first read")
            before = m.stats()
            with open(f, "ab") as w:
                w.write(b)
            check_eq(os.stat(m.path("f")).st_size, len(a + b), "new size")
            got = tpread(fd, 1 << 20, 0)
            check(got == a + b, "same descriptor after extension: %s"
                  % (got if isinstance(got, int) else "%d bytes" % len(got)))
            check_eq(tread_path(m.path("f")), a + b, "reopened")
            # Extended again, nothing but reads on the open descriptor.
            with open(f, "ab") as w:
                w.write(c)
            got = tpread(fd, 1 << 20, len(a))
            check(got == b + c, "read past the old end on the same fd: %s"
                  % describe(got, b + c))
            os.close(fd)
            delta = stat_delta(m, before, "changes", "retired")
            log("extend (timeouts 0): %r" % delta)
            check(delta["changes"] >= 2, "changes not counted: %r" % delta)
            check(delta["retired"] >= 1,
                  "the window mapped short was not retired: %r" % delta)
            check(m.alive(), "daemon died")

        write_file(f, a)
        with Mount(src, os.path.join(d, "mnt2"), DEFAULTS) as m:
            fd = os.open(m.path("f"), os.O_RDONLY)
            check(tpread(fd, 1 << 20, 0) == a, "first read (defaults)")
            with open(f, "ab") as w:
                w.write(b)
            time.sleep(1.3)  # past attr_timeout and entry_timeout
            got = tpread(fd, 1 << 20, 0)
            check(got == a + b, "same descriptor after the attribute "
                  "timeout: %s" % describe(got, a + b))
            check_eq(os.fstat(fd).st_size, len(a + b), "fstat size")
            check_eq(tread_path(m.path("f")), a + b, "reopened (defaults)")
            os.close(fd)


def test_truncated_while_open():
    """A file truncated in SOURCE while a client has it open and read (its
    windows mapped in the daemon): later reads give the new bytes, a short
    read or EIO, never the old bytes past the new end, never a hang; after
    reopening, the new content exactly."""
    old = pattern(1 << 20, 4)
    new_len = 100000  # not page-aligned: the last page is partly zeros
    new = old[:new_len]
    with scratch("coherence-trunc") as d:
        src = os.path.join(d, "src")
        os.makedirs(src)
        f = os.path.join(src, "f")

        # 1. No caching: the read's getattr notices the change.
        write_file(f, old)
        with Mount(src, os.path.join(d, "mnt"), FAST) as m:
            fd = os.open(m.path("f"), os.O_RDONLY)
            check(tpread(fd, 1 << 20, 0) == old, "first read")
            before = m.stats()
            os.truncate(f, new_len)
            r1 = check_truncated_read(tpread(fd, 1 << 20, 0), new, old,
                                      "read all after truncate")
            r2 = check_truncated_read(tpread(fd, 65536, 512 * 1024), new,
                                      old, "read past new end", 512 * 1024)
            drop_page_cache(fd)
            r3 = check_truncated_read(tpread(fd, 1 << 20, 0), new, old,
                                      "read all, cache dropped")
            check_eq(os.fstat(fd).st_size, new_len, "fstat size")
            os.close(fd)
            check_eq(tread_path(m.path("f")), new, "reopened")
            delta = stat_delta(m, before, "changes", "retired")
            log("truncate (timeouts 0): %s | %s | %s; %r" % (r1, r2, r3,
                                                              delta))
            check(delta["changes"] >= 1 and delta["retired"] >= 1,
                  "truncation not noticed: %r" % delta)

        # 2. Long timeouts: the kernel does not ask; the daemon serves a
        # window that reaches past the new end (the reply faults).
        write_file(f, old)
        with Mount(src, os.path.join(d, "mnt2"),
                   {"entry_timeout": 60, "attr_timeout": 60,
                    "window_size": "64K"}) as m:
            fd = os.open(m.path("f"), os.O_RDONLY)
            check(tpread(fd, 1 << 20, 0) == old, "first read (long)")
            before = m.stats()
            os.truncate(f, new_len)
            drop_page_cache(fd)
            results = []
            for off in (512 * 1024, 512 * 1024, 0, 64 * 1024, 0):
                got = tpread(fd, 65536, off)
                results.append(check_truncated_read(
                    got, new, old, "read at %d (long timeouts)" % off, off))
            drop_page_cache(fd)
            results.append(check_truncated_read(
                tpread(fd, 1 << 20, 0), new, old, "read all (long)"))
            os.close(fd)
            delta = stat_delta(m, before, "reply_faults", "retired")
            log("truncate (timeouts 60): %s; %r" % (" | ".join(results),
                                                    delta))
            check(delta["reply_faults"] >= 1,
                  "a read from a window past the new end did not fault: %r"
                  % delta)
            check(delta["retired"] >= 1, "windows not retired: %r" % delta)
            check_eq(tread_path(m.path("f")), new, "reopened (long)")
            check(m.alive(), "daemon died")

        # 3. Default timeouts: after the timeout, the same descriptor.
        write_file(f, old)
        with Mount(src, os.path.join(d, "mnt3"), DEFAULTS) as m:
            fd = os.open(m.path("f"), os.O_RDONLY)
            check(tpread(fd, 1 << 20, 0) == old, "first read (defaults)")
            os.truncate(f, new_len)
            time.sleep(1.3)
            check(tpread(fd, 1 << 20, 0) == new,
                  "same descriptor after the attribute timeout")
            os.close(fd)
            check_eq(tread_path(m.path("f")), new, "reopened (defaults)")


def rewrite_same_size_same_mtime(path, data):
    """Rewrite in place, then put mtime back: only ctime moves."""
    st = os.stat(path)
    time.sleep(0.05)  # let the ctime clock tick
    with open(path, "r+b") as w:
        w.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    st2 = os.stat(path)
    check_eq((st2.st_size, st2.st_mtime_ns, st2.st_ino),
             (st.st_size, st.st_mtime_ns, st.st_ino),
             "setup: size, mtime, inode kept")
    check(st2.st_ctime_ns != st.st_ctime_ns, "setup: ctime did not move")


def test_rewrite_same_size_ctime_only():
    """Same size, different bytes, mtime put back (only ctime changes):
    after reopening, the new bytes, with no caching and with the default
    timeouts (the open itself notices: the page cache is not kept), and a
    descriptor kept open sees them after the daemon's invalidation."""
    a, b = pattern(200000, 5), pattern(200000, 6)
    for opts in (FAST, DEFAULTS):
        with scratch("coherence-rewrite") as d:
            src = os.path.join(d, "src")
            os.makedirs(src)
            f = os.path.join(src, "f")
            write_file(f, a)
            with Mount(src, os.path.join(d, "mnt"), opts) as m:
                check_eq(tread_path(m.path("f")), a, "first read")
                kept = os.open(m.path("f"), os.O_RDONLY)
                check(tpread(kept, 1 << 20, 0) == a, "kept fd first read")
                before = m.stats()
                rewrite_same_size_same_mtime(f, b)
                got = tread_path(m.path("f"))
                check(got == b, "reopened after an in-place rewrite "
                      "(only ctime changed) with %r: %s" % (
                          opts, "old bytes" if got == a else "other bytes"))
                # The descriptor kept open: once the invalidation is done,
                # new bytes; meanwhile each page is wholly old or new.
                pages = range(0, len(a), 4096)

                def kept_sees_new():
                    got = tpread(kept, 1 << 20, 0)
                    check(not isinstance(got, int), "kept fd: error %r" % got)
                    check_eq(len(got), len(a), "kept fd length")
                    for p in pages:
                        check(got[p:p + 4096] in (a[p:p + 4096],
                                                  b[p:p + 4096]),
                              "kept fd: page at %d is neither" % p)
                    return got == b
                check(wait_for(kept_sees_new, 10),
                      "kept descriptor still reads old bytes after 10 s")
                os.close(kept)
                check(wait_for(lambda: stat_delta(
                    m, before, "invalidations")["invalidations"] >= 1, 5),
                    "no kernel cache invalidation sent")
                delta = stat_delta(m, before, "changes", "retired",
                                   "invalidations")
                log("rewrite %r: %r" % (opts, delta))
                # (same size: full windows stay, a shared mapping shows
                # the new bytes; nothing needs retiring)
                check(delta["changes"] >= 1, "change not counted")
                check(m.alive(), "daemon died")


def test_replaced_by_rename():
    """A file replaced by rename (a new inode at the name): reopening
    reads the new file; the descriptor open before keeps its attributes
    (nlink 0) and reads the old bytes or errors, never the new file's."""
    a, b = pattern(1 << 20, 10), pattern(700000, 11)
    chunk = 65536
    with scratch("coherence-rename") as d:
        src = os.path.join(d, "src")
        os.makedirs(src)
        f = os.path.join(src, "f")
        write_file(f, a)
        with Mount(src, os.path.join(d, "mnt"), FAST) as m:
            old_fd = os.open(m.path("f"), os.O_RDONLY)
            check(tpread(old_fd, 300000, 0) == a[:300000], "first read")
            tmp = os.path.join(src, ".f.new")
            write_file(tmp, b)
            os.rename(tmp, f)
            check_eq(os.stat(m.path("f")).st_size, len(b), "new size")
            check_eq(tread_path(m.path("f")), b, "reopened: the new file")
            st = os.fstat(old_fd)
            check_eq((st.st_size, st.st_nlink), (len(a), 0),
                     "old descriptor: (size, nlink)")
            drop_page_cache(old_fd)
            outcome = []
            for off in range(0, len(a), chunk):
                got = tpread(old_fd, chunk, off)
                if isinstance(got, int):
                    check(got in STALE_ERRORS, "old fd at %d: %s"
                          % (off, errno.errorcode[got]))
                    outcome.append(errno.errorcode[got])
                    continue
                check(got == a[off:off + len(got)],
                      "old fd at %d: bytes not the old file's%s" % (
                          off, " (the new file's)"
                          if got == b[off:off + len(got)] else ""))
                outcome.append(len(got))
            log("rename: old fd chunks: %r" % outcome)
            check_eq(outcome[0], chunk,
                     "old fd, first chunk (its window was mapped)")
            os.close(old_fd)
            check_eq(tread_path(m.path("f")), b, "the new file again")
            check(m.alive(), "daemon died")


def test_replaced_empty_file():
    """An empty file (read by pread, not mappings: a size-0 file may read
    non-empty, like /proc's) replaced by rename: the descriptor opened on
    the empty file reads nothing or an error, never the new file's bytes."""
    with scratch("coherence-empty") as d:
        src = os.path.join(d, "src")
        os.makedirs(src)
        f = os.path.join(src, "f")
        write_file(f, b"")
        secret = b"bytes of the file that replaced the empty one\n"
        with Mount(src, os.path.join(d, "mnt"), FAST) as m:
            fd = os.open(m.path("f"), os.O_RDONLY)
            try:
                check_eq(tpread(fd, 100, 0), b"", "empty file")
                write_file(f + ".new", secret)
                os.rename(f + ".new", f)
                got = tpread(fd, 100, 0)
                log("replaced empty file, old fd: %s" % describe(got, b""))
                if isinstance(got, int):
                    check(got in STALE_ERRORS, "old fd: %s"
                          % errno.errorcode[got])
                else:
                    check_eq(got, b"", "old descriptor of the replaced "
                             "empty file")
                check_eq(tread_path(m.path("f")), secret, "the new file")
            finally:
                os.close(fd)
            check(m.alive(), "daemon died")


def test_deleted_while_open():
    """A file deleted while a client holds it: the descriptor keeps
    reading its bytes (the daemon's windows still map the inode), fstat
    works with nlink 0, and the path answers ENOENT."""
    a = pattern(600000, 12)
    with scratch("coherence-delete") as d:
        src = os.path.join(d, "src")
        os.makedirs(src)
        f = os.path.join(src, "f")
        write_file(f, a)
        with Mount(src, os.path.join(d, "mnt"), FAST) as m:
            fd = os.open(m.path("f"), os.O_RDONLY)
            check(tpread(fd, 1 << 20, 0) == a, "first read")
            os.unlink(f)
            check_eq(errno_of(os.stat, m.path("f")), errno.ENOENT,
                     "stat of the deleted path")
            check_eq(errno_of(os.open, m.path("f"), os.O_RDONLY),
                     errno.ENOENT, "open of the deleted path")
            st = os.fstat(fd)
            check_eq((st.st_size, st.st_nlink), (len(a), 0),
                     "fstat of the open deleted file (size, nlink)")
            drop_page_cache(fd)
            before = m.stats()
            got = tpread(fd, 1 << 20, 0)
            check(got == a, "open descriptor of the deleted file: %s" % (
                errno.errorcode[got] if isinstance(got, int)
                else "%d bytes, differ" % len(got)))
            check(m.stats()["read_bytes"] > before["read_bytes"],
                  "the read was not served by the daemon")
            check(tpread(fd, 100, 599950) == a[599950:], "read at the end")
            os.close(fd)
            check(wait_for(lambda: m.stats()["client_opens"] == 0, 5),
                  "client_opens not back to 0")
            check(m.alive(), "daemon died")


def test_inode_number_reused():
    """A descriptor of a deleted file whose inode number SOURCE then hands
    to a new file of the same type (the daemon held no mapping of it any
    more): reading the old descriptor gives the old bytes or an error,
    never the new file's bytes (files are identified by (st_dev, st_ino)
    alone; a reused number is another file)."""
    a, c = pattern(8192, 20), pattern(8192, 21)
    with scratch("coherence-reuse") as d:
        src = os.path.join(d, "src")
        os.makedirs(src)
        write_file(os.path.join(src, "a"), a)
        write_file(os.path.join(src, "big"), pattern(1 << 20, 22))
        with Mount(src, os.path.join(d, "mnt"),
                   {"entry_timeout": 0, "attr_timeout": 0,
                    "window_size": "64K", "max_mapped": "64K"}) as m:
            fd = os.open(m.path("a"), os.O_RDONLY)
            try:
                check(tpread(fd, 8192, 0) == a, "first read")
                ino = os.stat(os.path.join(src, "a")).st_ino
                # Reading another file evicts a's only window
                # (max_mapped = one window): nothing holds a's inode.
                check(len(tread_path(m.path("big"))) == 1 << 20, "big")
                check(not any(p.endswith("/a") for _lo, _hi, p
                              in m.source_maps()), "a still mapped")
                os.unlink(os.path.join(src, "a"))
                name = None
                for k in range(64):
                    p = os.path.join(src, "c%d" % k)
                    write_file(p, c)
                    if os.stat(p).st_ino == ino:
                        name = "c%d" % k
                        break
                    os.unlink(p)
                if name is None:
                    from smmapfs_test import Skip
                    raise Skip("SOURCE's filesystem did not reuse the inode "
                               "number (no reuse, no confusion possible)")
                log("reuse: %s got a's inode number %d" % (name, ino))
                check_eq(tread_path(m.path(name)), c, "the new file")
                drop_page_cache(fd)
                got = tpread(fd, 8192, 0)
                if isinstance(got, int):
                    check(got in STALE_ERRORS, "old fd: %s"
                          % errno.errorcode[got])
                else:
                    check(got != c, "the deleted file's descriptor reads "
                          "the NEW file %s (same inode number)" % name)
                    check(got == a[:len(got)], "old fd: " + describe(got, a))
                check(m.alive(), "daemon died")
            finally:
                os.close(fd)


MMAP_CHILD = r"""
import mmap, os, sys
path = sys.argv[1]
touch, probe, size = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
old = open(sys.argv[5], "rb").read()
fd = os.open(path, os.O_RDONLY)
mm = mmap.mmap(fd, size, prot=mmap.PROT_READ)
if mm[:touch] != old[:touch]:
    print("bad-initial", flush=True); sys.exit(3)
print("ready", flush=True)
sys.stdin.readline()
try:
    got = mm[probe:probe + 4096]
except Exception as e:
    print("error %r" % e, flush=True); sys.exit(4)
if got == old[probe:probe + 4096]:
    print("stale", flush=True)
elif got == bytes(len(got)):
    print("zeros", flush=True)
else:
    print("other", flush=True)
sys.exit(0)
"""


def test_client_mmap_sigbus():
    """A client's mmap of a mount file while SOURCE is truncated: touching
    the mapping past the new end kills the CLIENT with SIGBUS (whether
    its pages were cached and the change noticed, or never read); the
    daemon survives and keeps serving."""
    # Pages "never read" must lie beyond the client kernel's readahead
    # around the touched ones (smmapfs sets 1 MiB): a big file, a far probe.
    size = 8 << 20
    old = pattern(size, 13)
    other = pattern(300000, 14)
    with scratch("coherence-mmap") as d:
        src = os.path.join(d, "src")
        os.makedirs(src)
        f = os.path.join(src, "f")
        oldcopy = os.path.join(d, "old")
        write_file(oldcopy, old)
        write_file(os.path.join(src, "other"), other)
        with Mount(src, os.path.join(d, "mnt"), FAST) as m:
            cases = (("all pages cached, change noticed", size, True,
                      size // 2),
                     ("pages never read", 64 << 10, False, size * 3 // 4))
            for what, touch, notice, probe in cases:
                write_file(f, old)
                child = subprocess.Popen(
                    [sys.executable, "-c", MMAP_CHILD, m.path("f"),
                     str(touch), str(probe), str(size), oldcopy],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, text=True)
                try:
                    line = call_with_timeout(READ_TIMEOUT,
                                             child.stdout.readline)
                    check_eq(line.strip(), "ready", what + ": child setup")
                    os.truncate(f, 100000)
                    if notice:
                        check_eq(os.stat(m.path("f")).st_size, 100000,
                                 "size through the mount")
                    child.stdin.write("go\n")
                    child.stdin.flush()
                    out, err = child.communicate(timeout=READ_TIMEOUT)
                finally:
                    if child.poll() is None:
                        child.kill()
                        child.wait()
                rc = child.returncode
                log("mmap (%s): child exit %s, output %r" % (what, rc,
                                                              out.strip()))
                check(rc == -signal.SIGBUS or rc == 4,
                      "%s: the client was not stopped (exit %s, %r, %s)"
                      % (what, rc, out.strip(), err.strip()[-300:]))
                check(m.alive(), "daemon died (%s)" % what)
                check_eq(tread_path(m.path("other")), other,
                         "another file after the client's SIGBUS")
                check_eq(tread_path(m.path("f")), old[:100000],
                         "the truncated file")


# ---------------------------------------------------------------------------
# churn

UNIT = 16  # every 16 bytes: (file id, version, offset)


def unit_data(fid, ver, start, end):
    """Content of file `fid`, version `ver`, for [start, end) (multiples
    of UNIT): each unit carries its file id and its offset."""
    return b"".join(struct.pack("<IIQ", fid, ver, o)
                    for o in range(start, end, UNIT))


def check_units(data, fid, off, what):
    """Every byte of the file id and offset fields is either the right one
    or zero (a unit torn by a concurrent write, or a hole, or zeros past a
    new end): never another file's, another offset's, or garbage."""
    want_fid = struct.pack("<I", fid)
    for i in range((-off) % UNIT, len(data) - UNIT + 1, UNIT):
        u = data[i:i + UNIT]
        want_off = struct.pack("<Q", off + i)
        for k in range(4):
            if u[k] not in (want_fid[k], 0):
                raise AssertionError("%s: unit at %d has file id %r"
                                     % (what, off + i, u[:4]))
        for k in range(8):
            if u[8 + k] not in (want_off[k], 0):
                raise AssertionError("%s: unit at %d names offset %d"
                                     % (what, off + i,
                                        struct.unpack("<Q", u[8:])[0]))


def test_churn():
    """Rounds of truncate/extend/rewrite/rename/delete on a few files while
    readers read through the mount with time bounds: no hang, only stale
    errors, no foreign bytes; finally every file reads back exactly as
    SOURCE has it and the daemon is alive."""
    rounds = variant_scale(50, 25)
    nfiles = 3
    fids = [0xA1B2C300 + i for i in range(nfiles)]
    rng = random.Random(4242)
    with scratch("coherence-churn") as d:
        src = os.path.join(d, "src")
        os.makedirs(src)
        paths = [os.path.join(src, "f%d" % i) for i in range(nfiles)]
        sizes = {}
        vers = {}

        def put(i, size, ver):
            tmp = paths[i] + ".tmp"
            write_file(tmp, unit_data(fids[i], ver, 0, size))
            os.rename(tmp, paths[i])
            sizes[i], vers[i] = size, ver

        for i in range(nfiles):
            put(i, UNIT * rng.randrange(1000, 40000), 1)
        opts = {"entry_timeout": 0, "attr_timeout": 0, "window_size": "64K",
                "max_mapped": "1M", "max_handles": 16, "max_fds": 4}
        with Mount(src, os.path.join(d, "mnt"), opts) as m:
            before = m.stats()
            stop = threading.Event()
            progress = {}
            failures = []
            tally = {"reads": 0, "bytes": 0, "errors": {}}
            lock = threading.Lock()

            def reader(rid):
                r = random.Random(rid)
                held = {}
                try:
                    while not stop.is_set():
                        i = r.randrange(nfiles)
                        progress[rid] = time.monotonic()
                        try:
                            if r.random() < 0.3 and i in held:
                                fd = held[i]
                            else:
                                fd = os.open(os.path.join(m.mnt, "f%d" % i),
                                             os.O_RDONLY)
                                if r.random() < 0.3:
                                    old = held.pop(i, None)
                                    if old is not None:
                                        os.close(old)
                                    held[i] = fd
                            try:
                                off = 0
                                while not stop.is_set():
                                    progress[rid] = time.monotonic()
                                    data = os.pread(fd, 65536 * 2, off)
                                    if not data:
                                        break
                                    check_units(data, fids[i], off,
                                                "reader %d f%d" % (rid, i))
                                    with lock:
                                        tally["reads"] += 1
                                        tally["bytes"] += len(data)
                                    off += len(data)
                            finally:
                                if held.get(i) != fd:
                                    os.close(fd)
                        except OSError as e:
                            if e.errno not in STALE_ERRORS:
                                raise
                            with lock:
                                k = errno.errorcode[e.errno]
                                tally["errors"][k] = (
                                    tally["errors"].get(k, 0) + 1)
                except Exception as e:  # noqa: BLE001 - reported below
                    failures.append(e)
                finally:
                    for fd in held.values():
                        os.close(fd)
                    progress[rid] = None

            readers = [threading.Thread(target=reader, args=(k,), daemon=True)
                       for k in range(3)]
            for t in readers:
                t.start()
            ops = {"truncate": 0, "extend": 0, "hole": 0, "rewrite": 0,
                   "rename": 0, "delete": 0}
            hung = None
            try:
                for rnd in range(rounds):
                    for i in range(nfiles):
                        op = rng.choice(sorted(ops))
                        ver = rnd * 10 + 2
                        if i not in sizes:
                            put(i, UNIT * rng.randrange(1, 30000), ver)
                            op = "rename"
                        elif op == "truncate":
                            sizes[i] = UNIT * rng.randrange(
                                0, sizes[i] // UNIT + 1)
                            os.truncate(paths[i], sizes[i])
                        elif op == "extend":
                            n = UNIT * rng.randrange(1, 20000)
                            with open(paths[i], "ab") as w:
                                w.write(unit_data(fids[i], ver, sizes[i],
                                                  sizes[i] + n))
                            sizes[i] += n
                        elif op == "hole":
                            sizes[i] += UNIT * rng.randrange(1, 5000)
                            os.truncate(paths[i], sizes[i])
                        elif op == "rewrite":
                            with open(paths[i], "r+b") as w:
                                w.write(unit_data(fids[i], ver, 0, sizes[i]))
                        elif op == "rename":
                            put(i, UNIT * rng.randrange(1, 30000), ver)
                        elif op == "delete":
                            os.unlink(paths[i])
                            del sizes[i]
                        ops[op] += 1
                    time.sleep(0.02)
                    now = time.monotonic()
                    for rid, t0 in list(progress.items()):
                        if t0 is not None and now - t0 > READ_TIMEOUT:
                            hung = rid
                    if hung is not None or failures:
                        break
            finally:
                stop.set()
                for t in readers:
                    t.join(READ_TIMEOUT)
            stuck = [t for t in readers if t.is_alive()]
            if stuck or hung is not None:
                m.kill()  # releases the blocked readers
                raise AssertionError("a reader hung (no progress for %s s)"
                                     % READ_TIMEOUT)
            if failures:
                raise failures[0]
            log("churn: %d rounds, ops %r, reads %r"
                % (rounds, ops, tally))
            check(m.alive(), "daemon died during the churn")
            check(tally["reads"] > 0, "readers never read anything")
            # Settled: every file reads back exactly as SOURCE has it.
            for i in range(nfiles):
                want_exists = os.path.exists(paths[i])
                if not want_exists:
                    check_eq(errno_of(os.stat, m.path("f%d" % i)),
                             errno.ENOENT, "deleted f%d" % i)
                    continue
                with open(paths[i], "rb") as fsrc:
                    want = fsrc.read()
                got = tread_path(m.path("f%d" % i))
                check(got == want, "f%d differs from SOURCE after the churn "
                      "(%d vs %d bytes)" % (i, len(got), len(want)))
            check_eq(sorted(n for n in os.listdir(m.path())),
                     sorted(os.listdir(src)), "listing after the churn")
            delta = stat_delta(m, before, "changes", "retired",
                               "invalidations", "reply_faults")
            log("churn stats: %r" % delta)
            check(delta["changes"] > 0, "no change noticed: %r" % delta)
            check(delta["retired"] > 0, "no window retired: %r" % delta)
            st = m.stats()
            check(st["mapped_bytes"] <= st["max_mapped"], "mapped over bound")


if __name__ == "__main__":
    main([test_extended_file_seen, test_truncated_while_open,
          test_rewrite_same_size_ctime_only, test_replaced_by_rename,
          test_replaced_empty_file, test_deleted_while_open,
          test_inode_number_reused,
          test_client_mmap_sigbus, test_churn])
