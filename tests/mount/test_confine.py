#!/usr/bin/env python3
"""Confinement: the daemon never serves a byte from outside SOURCE.

Every test builds SOURCE next to sentinels that lie outside it: a file and
a directory in the scratch directory beside SOURCE (reachable from SOURCE
by ../) and a file in /tmp.  inotify (AccessWatch) watches all of them for
the whole test, and every byte and name read through the mount is checked
for the sentinel's marker.  Escaping symlinks in SOURCE must appear as
symlinks.  A symlink met by a client is followed by the client's own kernel
(like any symlink, and relative to where the link appears in the mount):
that is not the daemon reading outside, so these tests never follow an
escaping link while the sentinels are watched (the last test does it on
purpose, as a control that the watch sees such accesses).  What must hold
is that the daemon's own resolution never crosses a link, even when a
directory is swapped for a link to an outside directory under it.
"""
import contextlib
import errno
import os
import stat
import subprocess
import sys
import tempfile
import threading
import time

from smmapfs_test import (AccessWatch, Mount, call_with_timeout, check,
                          check_eq, drop_page_cache, errno_of, log, main,
                          pattern, rename_exchange, scratch, variant_scale,
                          write_file)

NAME_MAX = 255
PATH_MAX = 4096
# Errors a client may see while a directory is swapped for a symlink.
SWAP_ERRORS = {errno.ENOENT, errno.ESTALE, errno.ELOOP, errno.EIO}


class Confined:
    """Scratch dir with SOURCE, outside sentinels, and their watch.

    Layout:  D/src (SOURCE), D/sentinel (file), D/outside/ (directory
    holding `data` and a file named by `outside_name`), /tmp/<sentinel>,
    D/m/mnt (mountpoint, two levels down so that a relative link
    `../outside` followed by a client from the mount root leads to
    D/m/outside, which does not exist).
    """

    def __init__(self, d):
        self.d = d
        self.src = os.path.join(d, "src")
        os.makedirs(self.src)
        self.mnt = os.path.join(d, "m", "mnt")
        tag = os.urandom(8).hex()
        self.marker = ("SMMAPFS-SENTINEL-%s|" % tag).encode()
        self.sentinel_data = (self.marker * (8192 // len(self.marker) + 1)
                              )[:8192]
        self.outside_name = "OUTSIDE-ONLY-" + tag
        self.sentinel = os.path.join(d, "sentinel")
        write_file(self.sentinel, self.sentinel_data)
        self.outside = os.path.join(d, "outside")
        os.makedirs(os.path.join(self.outside, "sub"))
        write_file(os.path.join(self.outside, "data"), self.sentinel_data)
        write_file(os.path.join(self.outside, self.outside_name),
                   self.sentinel_data)
        write_file(os.path.join(self.outside, "sub", "deeper"),
                   self.sentinel_data)
        fd, self.tmp_sentinel = tempfile.mkstemp(
            prefix="smmapfs-confine-sentinel-", dir="/tmp")
        os.write(fd, self.sentinel_data)
        os.close(fd)
        self.watched = [self.sentinel, self.outside,
                        os.path.join(self.outside, "data"),
                        os.path.join(self.outside, self.outside_name),
                        os.path.join(self.outside, "sub"),
                        os.path.join(self.outside, "sub", "deeper"),
                        self.tmp_sentinel]
        self.watch = None
        self.bytes_checked = 0

    def start_watch(self):
        """Watch the sentinels from now on (after setup touched them)."""
        self.watch = AccessWatch(self.watched)

    def check_data(self, data, what):
        """Bytes read through the mount never carry the sentinel."""
        check(self.marker not in data,
              "%s: sentinel content read through the mount" % what)
        self.bytes_checked += len(data)

    def check_names(self, names, what):
        for n in names:
            check(self.outside_name not in n and "OUTSIDE-ONLY" not in n,
                  "%s: a name from outside SOURCE listed: %r" % (what, n))

    def check_untouched(self, what):
        ev = self.watch.events()
        check(ev == [], "%s: a sentinel outside SOURCE was opened/read "
              "(%d events): %r" % (what, len(ev), ev[:10]))

    def check_daemon_confined(self, m, what):
        """No descriptor or mapping of the daemon is outside SOURCE."""
        bad = []
        with contextlib.suppress(FileNotFoundError):
            for fd, t in m.proc_fds().items():
                if (t.startswith(self.outside) or t == self.sentinel
                        or t == self.tmp_sentinel or t.startswith("/etc/")):
                    bad.append((fd, t))
            with open("/proc/%d/maps" % m.pid) as f:
                for line in f:
                    if (self.outside in line or self.sentinel in line
                            or self.tmp_sentinel in line):
                        bad.append(line.strip())
        check(bad == [], "%s: daemon holds outside files: %r" % (what, bad))

    def close(self):
        if self.watch:
            self.watch.close()
        with contextlib.suppress(OSError):
            os.unlink(self.tmp_sentinel)


@contextlib.contextmanager
def confined(tag):
    with scratch(tag) as d:
        c = Confined(d)
        try:
            yield c
        finally:
            c.close()


def describe(data, expect):
    """Where `data` departs from `expect`, for a failure message."""
    n = min(len(data), len(expect))
    first = next((i for i in range(n) if data[i] != expect[i]), n)
    zeros = data[first:] == bytes(len(data) - first)
    return "first difference at %d of %d/%d bytes%s" % (
        first, len(data), len(expect), ", zeros from there" if zeros else "")


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


# ---------------------------------------------------------------------------


def test_escaping_links_stay_links():
    """Absolute and relative links out of SOURCE show as links with their
    target strings; nothing behind them is touched; `..` and names with
    dots behave like on any filesystem."""
    with confined("confine-links") as c:
        src = c.src
        j = lambda *p: os.path.join(src, *p)  # noqa: E731
        inside = pattern(300000, 1)
        write_file(j("inside"), inside)
        os.makedirs(j("links"))
        os.makedirs(j("sub", "subsub"))
        write_file(j("sub", "subsub", "leaf"), b"leaf\n")
        links = {
            "etc-abs": "/etc",
            "etc-passwd": "/etc/passwd",
            "up2": "../..",
            "dotdot": "..",
            "sent-rel": "../sentinel",
            "outside-rel": "../outside",
            "outside-data-rel": "../outside/data",
            "sent-abs": c.sentinel,
            "tmp-abs": c.tmp_sentinel,
            "outside-abs": c.outside,
            "links/sent-rel2": "../../sentinel",
            "links/loop": "loop",
            "links/deep-up": "../" * 40 + "etc/passwd",
            "sub/subsub/up3": "../../../sentinel",
        }
        for name, target in links.items():
            os.symlink(target, j(name))
        dotted = ["a..b", "...", "..x", "x..", "....", ".. ", " ..",
                  ".hidden..", "..\u00e9"]
        for i, name in enumerate(dotted):
            write_file(j(name), pattern(1000 + i, 100 + i))
        os.makedirs(j("...dir", "..."))
        write_file(j("...dir", "...", "..f"), b"dotted dirs\n")

        c.start_watch()
        with AccessWatch([j("inside")]) as inside_watch, \
                Mount(src, c.mnt, {"entry_timeout": 0, "attr_timeout": 0,
                                   "window_size": "64K"}) as m:
            mp = m.path
            # Positive control: the watch sees the daemon open a file.
            data = read_file(mp("inside"))
            check(data == inside, "inside file differs through the mount")
            c.check_data(data, "inside")
            ev = inside_watch.events()
            check(any(mask & 0x020 for _p, mask in ev),
                  "control: the daemon's open of a SOURCE file was not seen "
                  "by inotify (%r): the watch proves nothing" % ev)

            for name, target in links.items():
                p = mp(name)
                check_eq(os.readlink(p), target, "readlink " + name)
                st = os.lstat(p)
                check(stat.S_ISLNK(st.st_mode), "%s: not a link: %o"
                      % (name, st.st_mode))
                check_eq(st.st_size, len(target.encode()),
                         "lstat size " + name)
                check_eq(errno_of(os.open, p, os.O_RDONLY | os.O_NOFOLLOW),
                         errno.ELOOP, "O_NOFOLLOW open of link " + name)
                check_eq(errno_of(os.getxattr, p, "user.x",
                                  follow_symlinks=False),
                         errno.ENODATA, "lgetxattr " + name)
                check_eq(os.listxattr(p, follow_symlinks=False), [],
                         "llistxattr " + name)
                # The link itself, opened without following it.
                fd = os.open(p, os.O_PATH | os.O_NOFOLLOW)
                try:
                    check(stat.S_ISLNK(os.fstat(fd).st_mode),
                          "O_PATH fd of %s is not a link" % name)
                    check_eq(os.readlink("", dir_fd=fd), target,
                             "readlinkat(fd, \"\") " + name)
                finally:
                    os.close(fd)
            for d in ("", "links", os.path.join("sub", "subsub")):
                names = os.listdir(mp(d))
                c.check_names(names, "listdir " + d)
                with os.scandir(mp(d)) as it:
                    for e in it:
                        rel = os.path.join(d, e.name)
                        if rel in links:
                            check(e.is_symlink(),
                                  "readdir type of %s is not a link" % rel)
            check(set(os.listdir(mp())) >=
                  {"etc-abs", "up2", "sent-abs", "inside", "...", "a..b"},
                  "root listing incomplete: %r" % sorted(os.listdir(mp())))

            # `..` is resolved by the kernel: at the mount root it leaves the
            # mount (the host's parent), inside it stays in the mount.
            parent = os.path.dirname(c.mnt)
            check_eq(sorted(os.listdir(mp() + "/..")),
                     sorted(os.listdir(parent)), "ls mnt/..")
            check_eq(sorted(os.listdir(mp("sub") + "/../..")),
                     sorted(os.listdir(parent)), "ls mnt/sub/../..")
            check_eq(sorted(os.listdir(mp("sub", "subsub") + "/../..")),
                     sorted(os.listdir(mp())), "ls mnt/sub/subsub/../..")
            check(os.path.samestat(os.stat(mp("sub") + "/.."),
                                   os.stat(mp())), "mnt/sub/.. is not mnt")
            check(os.path.samestat(os.stat(mp() + "/.."), os.stat(parent)),
                  "mnt/.. is not the mountpoint's parent")
            data = read_file(mp("sub", "subsub") + "/../subsub/leaf")
            check_eq(data, b"leaf\n", "mnt/sub/subsub/../subsub/leaf")
            check_eq(errno_of(os.stat, mp("sub") + "/../../src"),
                     errno.ENOENT, "mnt/sub/../../src (no src next to mnt)")

            # Names made of dots are plain names.
            for i, name in enumerate(dotted):
                data = read_file(mp(name))
                check(data == pattern(1000 + i, 100 + i),
                      "content of %r differs" % name)
                c.check_data(data, name)
            check_eq(read_file(mp("...dir", "...", "..f")), b"dotted dirs\n",
                     "...dir/.../..f")
            check_eq(sorted(os.listdir(mp("...dir"))), ["..."], "ls ...dir")
            check_eq(sorted(os.listdir(mp("...dir", "..."))), ["..f"],
                     "ls ...dir/...")

            c.check_daemon_confined(m, "after the link checks")
            check(m.alive(), "daemon died")
            st = m.stats()
            check_eq(st["errors"], 0, "errors logged by the daemon")
        c.check_untouched("escaping links")
        log("links: %d bytes checked" % c.bytes_checked)


SWAPPER = r"""
import ctypes, ctypes.util, os, sys, time
libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
a, b = os.fsencode(sys.argv[1]), os.fsencode(sys.argv[2])
secs = float(sys.argv[3])
end = time.monotonic() + secs
n = 0
while time.monotonic() < end:
    if libc.renameat2(-100, a, -100, b, 2) != 0:
        sys.exit("renameat2: %s" % os.strerror(ctypes.get_errno()))
    n += 1
if n % 2:
    libc.renameat2(-100, a, -100, b, 2)
    n += 1
print(n)
"""


def test_swap_dir_for_symlink():
    """A directory of SOURCE swapped, in a tight loop, with a symlink to an
    outside directory holding the same relative names: clients walking,
    stating, listing, opening and reading under it through the mount (no
    kernel caching of names or attributes, windows of one page remapped all
    the time) get SOURCE's bytes or an error, never the outside bytes, and
    the daemon never opens anything outside."""
    secs = variant_scale(6.0, 5.0)
    with confined("confine-swap") as c:
        src = c.src
        j = lambda *p: os.path.join(src, *p)  # noqa: E731
        inside = pattern(len(c.sentinel_data), 7)
        deeper = pattern(len(c.sentinel_data), 8)
        os.makedirs(j("swap", "sub"))
        write_file(j("swap", "data"), inside)
        write_file(j("swap", "sub", "deeper"), deeper)
        os.symlink("../outside", j("swap-link"))
        check(not os.path.exists(os.path.join(c.d, "m", "outside")),
              "setup: a client following ../outside must not find one")

        c.start_watch()
        opts = {"entry_timeout": 0, "attr_timeout": 0, "window_size": "4K",
                "max_handles": 2, "max_mapped": "8K", "max_fds": 4}
        with Mount(src, c.mnt, opts) as m:
            mp = m.path
            # Open handles taken while the directory is in place.
            dfd = os.open(mp("swap"), os.O_RDONLY | os.O_DIRECTORY)
            held = os.open(mp("swap", "data"), os.O_RDONLY)
            held_sub = os.open(mp("swap", "sub"), os.O_RDONLY | os.O_DIRECTORY)
            check(os.pread(held, len(inside), 0) == inside, "held read")

            swapper = subprocess.Popen(
                [sys.executable, "-c", SWAPPER, j("swap"), j("swap-link"),
                 str(secs)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True)
            stop = threading.Event()
            lock = threading.Lock()
            tally = {"ok": 0, "err": {}, "ops": {}}
            failures = []

            def note(op, e=None):
                with lock:
                    if e is None:
                        tally["ok"] += 1
                        tally["ops"][op] = tally["ops"].get(op, 0) + 1
                    else:
                        k = errno.errorcode.get(e, str(e))
                        tally["err"][k] = tally["err"].get(k, 0) + 1

            def want(data, expect, op):
                """SOURCE's bytes; short only when an error cut the read
                (read(2) returns what it got before the error)."""
                c.check_data(data, op)
                if data != expect[:len(data)] or not data:
                    raise AssertionError(
                        "%s: read %d bytes that are not SOURCE's (%s)"
                        % (op, len(data), describe(data, expect)))
                if len(data) < len(expect):
                    note("short " + op)

            def ops_walk():
                yield "read swap/data", lambda: want(
                    read_file(mp("swap", "data")), inside, "swap/data")
                yield "read swap-link/data", lambda: want(
                    read_file(mp("swap-link", "data")), inside,
                    "swap-link/data")
                yield "read swap/sub/deeper", lambda: want(
                    read_file(mp("swap", "sub", "deeper")), deeper,
                    "swap/sub/deeper")
                yield "stat swap/data", lambda: check_eq(
                    os.stat(mp("swap", "data")).st_size, len(inside),
                    "size of swap/data")
                yield "ls swap", lambda: c.check_names(
                    os.listdir(mp("swap")), "ls swap")
                yield "ls swap-link/sub", lambda: c.check_names(
                    os.listdir(mp("swap-link", "sub")), "ls swap-link/sub")

            def at(fd, name):
                f = os.open(name, os.O_RDONLY, dir_fd=fd)
                try:
                    drop_page_cache(f)
                    return os.read(f, len(inside) + 1)
                finally:
                    os.close(f)

            def ops_held():
                yield "openat(swap, data)", lambda: want(
                    at(dfd, "data"), inside, "openat data")
                yield "openat(swap/sub, deeper)", lambda: want(
                    at(held_sub, "deeper"), deeper, "openat deeper")
                yield "openat(swap, sub/deeper)", lambda: want(
                    at(dfd, "sub/deeper"), deeper, "openat sub/deeper")
                yield "stat(swap, data)", lambda: os.stat(
                    "data", dir_fd=dfd, follow_symlinks=False)

                def ls_held():
                    f = os.open(".", os.O_RDONLY | os.O_DIRECTORY, dir_fd=dfd)
                    try:
                        c.check_names(os.listdir(f), "ls held swap")
                    finally:
                        os.close(f)
                yield "ls held swap", ls_held

                def pread_held():
                    drop_page_cache(held)
                    off = (tally["ok"] * 4096) % len(inside)
                    data = os.pread(held, 8192, off)
                    want(data, inside[off:off + 8192], "pread held")
                yield "pread held", pread_held

            unexpected = {}

            def client(gen):
                end = time.monotonic() + secs
                try:
                    while time.monotonic() < end and not stop.is_set():
                        for op, fn in gen():
                            try:
                                fn()
                                note(op)
                            except OSError as e:
                                note(op, e.errno)
                                if e.errno not in SWAP_ERRORS:
                                    k = "%s: %s" % (op, errno.errorcode.get(
                                        e.errno, e.errno))
                                    with lock:
                                        unexpected[k] = (
                                            unexpected.get(k, 0) + 1)
                except Exception as e:  # noqa: BLE001 - reported below
                    failures.append(e)
                    stop.set()

            threads = [threading.Thread(target=client, args=(g,))
                       for g in (ops_walk, ops_walk, ops_held, ops_held)]
            for t in threads:
                t.start()
            samples = 0
            try:
                while any(t.is_alive() for t in threads):
                    c.check_daemon_confined(m, "during the swap")
                    samples += 1
                    time.sleep(0.05)
            finally:
                stop.set()
                for t in threads:
                    t.join(60)
                out, err = swapper.communicate(timeout=60)
            check(swapper.returncode == 0, "swapper failed: %s" % err)
            c.check_untouched("swap")
            if failures:
                raise failures[0]
            log("swap: %s swaps, %d ok ops %r, errors %r, %d samples"
                % (out.strip(), tally["ok"], tally["ops"], tally["err"],
                   samples))
            check(int(out) > 100, "the swapper hardly ran: %s" % out)
            check(tally["ok"] > 0, "no operation ever succeeded")
            check(m.alive(), "daemon died during the swap")
            check(not unexpected, "errors other than %s: %r" % (
                sorted(errno.errorcode[e] for e in SWAP_ERRORS), unexpected))
            c.check_daemon_confined(m, "after the swap")
            # Settled: the directory is back; everything reads as SOURCE.
            check_eq(read_file(mp("swap", "data")), inside, "swap/data")
            check_eq(read_file(mp("swap", "sub", "deeper")), deeper,
                     "swap/sub/deeper")
            check(stat.S_ISLNK(os.lstat(mp("swap-link")).st_mode),
                  "swap-link is not a link")
            check_eq(os.readlink(mp("swap-link")), "../outside",
                     "readlink swap-link")
            for fd in (dfd, held, held_sub):
                os.close(fd)
            # (reads failing on a stale name are logged: errors > 0 here)
        c.check_untouched("swap, after unmount")
        log("swap: %d bytes checked" % c.bytes_checked)


def test_stale_directory_handles():
    """Deterministic form of the swap: a directory the client holds open is
    exchanged with a symlink to an outside directory.  Everything the
    daemon resolves through the old name answers ESTALE (the design: a name
    now naming another inode is stale) and never reaches outside; once the
    kernel looks the directory up under its new name, the held handle works
    again."""
    with confined("confine-stale") as c:
        src = c.src
        j = lambda *p: os.path.join(src, *p)  # noqa: E731
        inside = pattern(len(c.sentinel_data), 9)
        os.makedirs(j("dir", "sub"))
        write_file(j("dir", "data"), inside)
        write_file(j("dir", "sub", "deeper"), inside[::-1])
        os.symlink("../outside", j("link"))
        c.start_watch()
        with Mount(src, c.mnt, {"entry_timeout": 0, "attr_timeout": 0,
                                "window_size": "4K", "max_handles": 1,
                                "max_mapped": "4K"}) as m:
            dfd = os.open(m.path("dir"), os.O_RDONLY | os.O_DIRECTORY)
            held = os.open(m.path("dir", "data"), os.O_RDONLY)
            rename_exchange(j("dir"), j("link"))
            results = {}
            for what, fn in (
                    ("fstat(dir fd)", lambda: os.fstat(dfd)),
                    ("openat(dir fd, data)",
                     lambda: os.close(os.open("data", os.O_RDONLY,
                                              dir_fd=dfd))),
                    ("fstatat(dir fd, data)",
                     lambda: os.stat("data", dir_fd=dfd,
                                     follow_symlinks=False)),
                    ("openat(dir fd, sub/deeper)",
                     lambda: os.close(os.open("sub/deeper", os.O_RDONLY,
                                              dir_fd=dfd))),
                    ("openat(dir fd, \".\", O_DIRECTORY)",
                     lambda: os.close(os.open(".", os.O_RDONLY |
                                              os.O_DIRECTORY, dir_fd=dfd)))):
                results[what] = errno.errorcode.get(errno_of(fn), "no error")
            # The file opened before: its windows must be mapped anew
            # (one 4K window at a time) through the stale name.
            drop_page_cache(held)
            try:
                data = os.pread(held, len(inside), 0)
                c.check_data(data, "held file")
                check(data == inside[:len(data)], "held file: wrong bytes")
                results["read(held file)"] = "%d bytes" % len(data)
            except OSError as e:
                check(e.errno in SWAP_ERRORS, "held file read: %s" % e)
                results["read(held file)"] = errno.errorcode[e.errno]
            c.check_untouched("stale handles")
            log("stale: %r" % results)
            for what, got in results.items():
                if what.startswith("read"):
                    continue
                check_eq(got, "ESTALE", what + " after the directory's "
                         "name became a symlink")
            check_eq(os.readlink(m.path("dir")), "../outside", "readlink dir")
            # The client finds the directory under its new name: the held
            # handle follows it there.
            check_eq(read_file(m.path("link", "data")), inside, "link/data")
            f = os.open("data", os.O_RDONLY, dir_fd=dfd)
            check_eq(os.read(f, len(inside) + 1), inside,
                     "held directory handle after the new name was seen")
            os.close(f)
            os.close(held)
            os.close(dfd)
            check(m.alive(), "daemon died")
        c.check_untouched("stale handles, after unmount")


def test_long_names():
    """NAME_MAX names work, longer ones fail with ENAMETOOLONG; a link
    target of PATH_MAX - 1 bytes comes back whole."""
    with confined("confine-names") as c:
        src = c.src
        n255 = "n" * (NAME_MAX - 4) + ".bin"
        u255 = "\u00e9" * 127 + "x"               # 255 bytes in UTF-8
        check_eq(len(u255.encode()), NAME_MAX, "setup: utf-8 name length")
        d255 = "d" * NAME_MAX
        write_file(os.path.join(src, n255), pattern(70000, 1))
        write_file(os.path.join(src, u255), pattern(5000, 2))
        os.makedirs(os.path.join(src, d255))
        write_file(os.path.join(src, d255, n255), pattern(9000, 3))
        target = ("a/" * (PATH_MAX // 2))[:PATH_MAX - 1]
        os.symlink(target, os.path.join(src, "longlink"))
        os.symlink(c.sentinel + "/" + "x" * 200, os.path.join(src, "l2"))

        c.start_watch()
        with Mount(src, c.mnt, {"entry_timeout": 0, "attr_timeout": 0,
                                "window_size": "64K"}) as m:
            names = os.listdir(m.path())
            for n in (n255, u255, d255, "longlink"):
                check(n in names, "%r not listed" % n[:20])
            check_eq(read_file(m.path(n255)), pattern(70000, 1), "255-name")
            check_eq(read_file(m.path(u255)), pattern(5000, 2), "utf8 name")
            check_eq(read_file(m.path(d255, n255)), pattern(9000, 3),
                     "255/255")
            check_eq(os.readlink(m.path("longlink")), target,
                     "4095-byte link target")
            check_eq(os.readlink(m.path("l2")), c.sentinel + "/" + "x" * 200,
                     "l2")
            for ln in (NAME_MAX + 1, 300, 1024, 1025, 3000):
                for what, fn in (("stat", os.stat), ("lstat", os.lstat),
                                 ("open", lambda p: os.close(
                                     os.open(p, os.O_RDONLY)))):
                    e = errno_of(fn, m.path("n" * ln))
                    check_eq(e, errno.ENAMETOOLONG,
                             "%s of a %d-byte name" % (what, ln))
                e = errno_of(os.stat, m.path(d255, "m" * ln))
                check_eq(e, errno.ENAMETOOLONG,
                         "stat of a %d-byte name in a subdirectory" % ln)
            check(m.alive(), "daemon died")
            check_eq(m.stats()["errors"], 0, "errors logged by the daemon")
        c.check_untouched("long names")


def walk_down(root_fd, names):
    """openat(O_DIRECTORY) each name in turn; returns the list of fds."""
    fds = [root_fd]
    for n in names:
        fds.append(os.open(n, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fds[-1]))
    return fds


def test_deep_paths():
    """A directory chain deeper than PATH_MAX: through the mount, files
    whose path beneath SOURCE fits are read exactly (also by an absolute
    path just under PATH_MAX), deeper ones answer ENAMETOOLONG; the daemon
    never crashes and never misreads."""
    levels = 44
    comp = 100  # bytes per directory name
    with confined("confine-deep") as c:
        src = c.src
        names = ["%03d" % i + "D" * (comp - 3) for i in range(levels)]
        # relative mkdir walk: the absolute paths exceed PATH_MAX
        fds = [os.open(src, os.O_RDONLY | os.O_DIRECTORY)]
        rel_len = {}  # level -> length of the level's path beneath SOURCE
        for i, n in enumerate(names):
            os.mkdir(n, dir_fd=fds[-1])
            fds.append(os.open(n, os.O_RDONLY | os.O_DIRECTORY,
                               dir_fd=fds[-1]))
            lvl = i + 1
            rel_len[lvl] = lvl * (comp + 1) - 1
            f = os.open("f", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fds[-1])
            os.write(f, pattern(5000 + lvl, lvl))
            os.close(f)
        # Names putting a file's path at exactly 4094, 4095, 4096 bytes.
        edge_lvl = max(k for k, v in rel_len.items() if v + 2 <= PATH_MAX - 3)
        edge = {}
        for total in (PATH_MAX - 3, PATH_MAX - 2, PATH_MAX - 1, PATH_MAX):
            ln = total - rel_len[edge_lvl] - 1
            name = "e" * ln
            f = os.open(name, os.O_WRONLY | os.O_CREAT, 0o644,
                        dir_fd=fds[edge_lvl])
            os.write(f, pattern(777, total))
            os.close(f)
            edge[total] = name
        for f in fds:
            os.close(f)

        c.start_watch()
        with Mount(src, c.mnt, {"entry_timeout": 0, "attr_timeout": 0,
                                "window_size": "4K"}) as m:
            mroot = os.open(m.path(), os.O_RDONLY | os.O_DIRECTORY)
            fds = [mroot]
            reached = 0
            try:
                for i, n in enumerate(names):
                    lvl = i + 1
                    try:
                        fd = os.open(n, os.O_RDONLY | os.O_DIRECTORY,
                                     dir_fd=fds[-1])
                    except OSError as e:
                        check_eq(e.errno, errno.ENAMETOOLONG,
                                 "lookup of level %d (path %d bytes)"
                                 % (lvl, rel_len[lvl]))
                        check(rel_len[lvl] >= PATH_MAX - 1,
                              "level %d (path %d bytes < PATH_MAX) refused"
                              % (lvl, rel_len[lvl]))
                        break
                    check(rel_len[lvl] < PATH_MAX,
                          "level %d reached with a %d-byte path"
                          % (lvl, rel_len[lvl]))
                    fds.append(fd)
                    reached = lvl
                    frel = rel_len[lvl] + 2
                    try:
                        f = os.open("f", os.O_RDONLY, dir_fd=fd)
                        data = call_with_timeout(20, os.read, f, 1 << 16)
                        os.close(f)
                        check(data == pattern(5000 + lvl, lvl),
                              "level %d file differs" % lvl)
                        c.check_data(data, "deep f")
                    except OSError as e:
                        check_eq(e.errno, errno.ENAMETOOLONG,
                                 "open of level %d f" % lvl)
                        check(frel >= PATH_MAX - 1,
                              "level %d f (path %d bytes) refused"
                              % (lvl, frel))
                    listing = os.listdir(fd)
                    check("f" in listing, "level %d listing %r"
                          % (lvl, listing))
                    if lvl == edge_lvl:
                        check(set(edge.values()) <= set(listing),
                              "edge names not listed at level %d" % lvl)
                check(reached >= edge_lvl,
                      "stopped at level %d, before %d" % (reached, edge_lvl))
                check(reached < levels, "a path beyond PATH_MAX was reached")
                for total, name in sorted(edge.items()):
                    try:
                        f = os.open(name, os.O_RDONLY, dir_fd=fds[edge_lvl])
                        data = os.read(f, 4096)
                        os.close(f)
                        check(data == pattern(777, total),
                              "%d-byte path: content differs" % total)
                        res = "data"
                    except OSError as e:
                        check_eq(e.errno, errno.ENAMETOOLONG,
                                 "%d-byte path" % total)
                        res = "ENAMETOOLONG"
                    log("deep: a file with a %d-byte path beneath SOURCE: %s"
                        % (total, res))
                    if total <= PATH_MAX - 2:
                        check_eq(res, "data", "%d-byte path" % total)
                    if total >= PATH_MAX:
                        check_eq(res, "ENAMETOOLONG", "%d-byte path" % total)
                # An absolute path through the mount just under PATH_MAX.
                mlen = len(os.fsencode(m.path()))
                lvl = max(k for k in range(1, reached + 1)
                          if mlen + 1 + rel_len[k] + 2 <= PATH_MAX - 1)
                p = os.path.join(m.path(), *names[:lvl], "f")
                check(len(os.fsencode(p)) > PATH_MAX - 1 - comp,
                      "setup: path not near PATH_MAX")
                check_eq(read_file(p), pattern(5000 + lvl, lvl),
                         "absolute path of %d bytes" % len(os.fsencode(p)))
                p2 = os.path.join(m.path(), *names[:lvl + 1], "f")
                check_eq(errno_of(read_file, p2), errno.ENAMETOOLONG,
                         "absolute path of %d bytes" % len(os.fsencode(p2)))
                # os.fwalk descends by descriptors until refused.
                count = 0
                for _root, _dirs, files, _rfd in os.fwalk(m.path()):
                    count += len(files)
                check(count >= reached, "fwalk saw %d files" % count)
            finally:
                for f in fds:
                    os.close(f)
            check(m.alive(), "daemon died")
            c.check_daemon_confined(m, "deep")
        c.check_untouched("deep paths")
        log("deep: reached level %d of %d (edge level %d)"
            % (reached, levels, edge_lvl))


def test_bind_mount_inside_source():
    """A bind mount beneath SOURCE (of a directory outside it) is part of
    SOURCE as the kernel presents it: the mirror serves it (the daemon's
    resolution stays beneath SOURCE's root but crosses mount points), and
    unmounting it shows the directory underneath."""
    with scratch("confine-bind") as d:
        src = os.path.join(d, "src")
        bindsrc = os.path.join(d, "bindsrc")
        os.makedirs(os.path.join(src, "bound"))
        write_file(os.path.join(src, "bound", "under"), b"under the mount\n")
        os.makedirs(bindsrc)
        content = pattern(100000, 44)
        write_file(os.path.join(bindsrc, "bfile"), content)
        target = os.path.join(src, "bound")
        p = run_mount(["mount", "--bind", bindsrc, target])
        if p.returncode != 0:
            from smmapfs_test import Skip
            raise Skip("mount --bind not permitted: %s" % p.stderr.strip())
        try:
            with AccessWatch([os.path.join(bindsrc, "bfile")]) as w, \
                    Mount(src, os.path.join(d, "mnt"),
                          {"entry_timeout": 0, "attr_timeout": 0}) as m:
                check_eq(sorted(os.listdir(m.path("bound"))), ["bfile"],
                         "ls bound (bind-mounted)")
                check_eq(read_file(m.path("bound", "bfile")), content,
                         "bfile through the mount")
                check(any(mask & 0x020 for _p, mask in w.events()),
                      "the daemon's open of the bind-mounted file not seen")
                # The daemon's windows on bfile keep the bind mount busy
                # (a mapping holds its file's mount): detach it lazily.
                p = run_mount(["umount", target])
                log("bind: plain umount while served: %s"
                    % (p.stderr.strip() or "ok"))
                if p.returncode != 0:
                    run_mount(["umount", "-l", target], check_rc=True)
                check_eq(sorted(os.listdir(m.path("bound"))), ["under"],
                         "ls bound after umount")
                check_eq(errno_of(os.stat, m.path("bound", "bfile")),
                         errno.ENOENT, "bfile after umount")
                check_eq(read_file(m.path("bound", "under")),
                         b"under the mount\n", "the file under the mount")
                check(m.alive(), "daemon died")
        finally:
            if is_mount_point(target):
                run_mount(["umount", "-l", target])


def run_mount(cmd, check_rc=False):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True)
    if check_rc:
        check(p.returncode == 0, "%s failed: %s" % (cmd, p.stderr))
    return p


def is_mount_point(path):
    from smmapfs_test import is_mounted
    return is_mounted(path)


def test_control_client_follows_link():
    """Control: a client that follows an escaping absolute link reads the
    outside file itself (its kernel resolves the link): the watch sees it,
    and the daemon serves none of those bytes.  This proves the watches in
    the other tests would have seen a read."""
    with confined("confine-control") as c:
        os.symlink(c.sentinel, os.path.join(c.src, "sent-abs"))
        write_file(os.path.join(c.src, "x"), b"x")
        c.start_watch()
        with Mount(c.src, c.mnt, {}) as m:
            before = m.stats()
            data = read_file(m.path("sent-abs"))
            after = m.stats()
            check(data == c.sentinel_data, "read through the link")
            check_eq(after["read_bytes"], before["read_bytes"],
                     "bytes the daemon served for the client's link read")
            ev = c.watch.events()
            check(any(p == c.sentinel and mask & 0x020 for p, mask in ev),
                  "the client's open of the sentinel was not seen: %r" % ev)
            check(any(p == c.sentinel and mask & 0x001 for p, mask in ev),
                  "the client's read of the sentinel was not seen: %r" % ev)


if __name__ == "__main__":
    main([test_escaping_links_stay_links, test_swap_dir_for_symlink,
          test_stale_directory_handles, test_long_names, test_deep_paths,
          test_bind_mount_inside_source, test_control_client_follows_link])
