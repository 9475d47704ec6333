#!/usr/bin/env python3
"""Escape attempts not covered by tests/mount/test_confine.py.

* `..` in paths requested through the mount (os.open with dir_fd and
  "a/../../b"-style paths) resolve as in SOURCE or, at the mount's root,
  into the mountpoint's parent - never into SOURCE's parent; names that
  look like traversal ("...", ".. ", "..\\", "%2e%2e") are plain names;
* NAME_MAX names work, longer ones fail with ENAMETOOLONG; a chain of
  directories whose path beneath SOURCE outgrows PATH_MAX reads correctly
  as long as the path fits and gives ENAMETOOLONG beyond - never EIO, and
  the daemon lives;
* a directory and a file swapped with symlinks leading out of SOURCE
  (renameat2 RENAME_EXCHANGE in a loop) while clients read through them:
  the sentinel outside SOURCE is never opened or read (inotify), clients
  get SOURCE's bytes or an error, never the sentinel's.

Runs the sanitized daemon under the asan/tsan setups (SMMAPFS_BIN).
"""
import errno
import os
import threading
import time

from smmapfs_test import (AccessWatch, Mount, check, check_eq, log, main,
                          pattern, rename_exchange, scratch, variant_scale,
                          write_file)

SENTINEL = b"SENTINEL outside SOURCE - must never be read\n"
NAME_MAX = 255
PATH_MAX = 4096


def layout(d):
    """d/outside/{f,secret} (sentinels), d/src (SOURCE), d/m/mnt: a
    relative link "../outside" followed by the client's kernel from the
    mount leads to d/m/outside, which does not exist."""
    out = os.path.join(d, "outside")
    os.makedirs(out)
    write_file(os.path.join(out, "f"), SENTINEL)
    write_file(os.path.join(out, "secret"), SENTINEL)
    src = os.path.join(d, "src")
    os.makedirs(os.path.join(src, "sub", "inner"))
    write_file(os.path.join(src, "top"), pattern(5000, 1))
    write_file(os.path.join(src, "sub", "inner", "file"), pattern(6000, 2))
    for name in ("...", ".. ", "..\\", "%2e%2e", "..."):
        write_file(os.path.join(src, "sub", name), name.encode())
    return src, out, os.path.join(d, "m", "mnt")


def read_at(dir_fd, path):
    fd = os.open(path, os.O_RDONLY, dir_fd=dir_fd)
    try:
        return os.read(fd, 1 << 20)
    finally:
        os.close(fd)


def test_dotdot_and_odd_names():
    with scratch("escape-dots") as d:
        src, out, mnt = layout(d)
        watched = [out, os.path.join(out, "f"), os.path.join(out, "secret")]
        with AccessWatch(watched) as w, Mount(src, mnt) as m:
            root = os.open(m.mnt, os.O_RDONLY | os.O_DIRECTORY)
            sub = os.open(m.path("sub"), os.O_RDONLY | os.O_DIRECTORY)
            try:
                check_eq(read_at(root, "sub/inner/../../top"),
                         pattern(5000, 1), "sub/inner/../../top")
                check_eq(read_at(sub, "../top"), pattern(5000, 1), "../top")
                check_eq(read_at(sub, "inner/../inner/file"),
                         pattern(6000, 2), "inner/../inner/file")
                check_eq(sorted(os.listdir(m.path("sub", ".."))),
                         sorted(os.listdir(src)), "listing of sub/..")
                # Above the mount's root: the mountpoint's parent (d/m),
                # not SOURCE's parent (d).
                st = os.stat("..", dir_fd=root)
                check_eq((st.st_dev, st.st_ino),
                         (os.stat(os.path.dirname(mnt)).st_dev,
                          os.stat(os.path.dirname(mnt)).st_ino),
                         "mount root's ..")
                # (d/m/outside does not exist; "../../outside" would be
                # the client's own walk to the real d/outside, not ours.)
                for path in ("../outside/secret", "sub/../../outside/f",
                             "sub/inner/../../../outside/f"):
                    e = None
                    try:
                        read_at(root, path)
                    except OSError as ex:
                        e = ex.errno
                    check_eq(e, errno.ENOENT, "open %s from the root" % path)
                for name in ("...", ".. ", "..\\", "%2e%2e"):
                    check_eq(read_at(sub, name), name.encode(),
                             "plain name %r" % name)
                for name in ("....", "..%2f", "..%2foutside", " ..",
                             "..\t", "..."):
                    if name == "...":
                        continue
                    e = None
                    try:
                        os.stat(name, dir_fd=root)
                    except OSError as ex:
                        e = ex.errno
                    check_eq(e, errno.ENOENT, "lookup of %r" % name)
            finally:
                os.close(root)
                os.close(sub)
            time.sleep(0.1)
            check_eq(w.events(), [], "the outside was accessed")
            check(m.alive(), "daemon died")


def test_name_max_and_path_max():
    with scratch("escape-long") as d:
        src = os.path.join(d, "src")
        os.makedirs(src)
        long_name = "n" * NAME_MAX
        write_file(os.path.join(src, long_name), pattern(3000, 3))
        os.makedirs(os.path.join(src, "d" * NAME_MAX))
        write_file(os.path.join(src, "d" * NAME_MAX, long_name),
                   pattern(3001, 4))
        # A chain of 250-byte names, deeper than PATH_MAX beneath SOURCE.
        comp = 250
        levels = 20
        fd = os.open(src, os.O_RDONLY | os.O_DIRECTORY)
        depth_len = []
        length = 0
        for i in range(levels):
            name = ("%02d" % i) + "x" * (comp - 2)
            os.mkdir(name, dir_fd=fd)
            nfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nfd
            length += comp + 1
            leaf = os.open("leaf", os.O_WRONLY | os.O_CREAT, 0o644,
                           dir_fd=fd)
            os.write(leaf, pattern(100 + i, 50 + i))
            os.close(leaf)
            depth_len.append(length + len("leaf"))  # "L1/.../Li/leaf"
        os.close(fd)
        with Mount(src, os.path.join(d, "mnt")) as m:
            with open(m.path(long_name), "rb") as f:
                check_eq(f.read(), pattern(3000, 3), "NAME_MAX file")
            with open(m.path("d" * NAME_MAX, long_name), "rb") as f:
                check_eq(f.read(), pattern(3001, 4), "NAME_MAX dir/file")
            e = None
            try:
                os.stat(m.path("n" * (NAME_MAX + 1)))
            except OSError as ex:
                e = ex.errno
            check_eq(e, errno.ENAMETOOLONG, "NAME_MAX + 1")
            fd = os.open(m.mnt, os.O_RDONLY | os.O_DIRECTORY)
            outcomes = []
            try:
                for i in range(levels):
                    name = ("%02d" % i) + "x" * (comp - 2)
                    try:
                        nfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY,
                                      dir_fd=fd)
                    except OSError as ex:
                        outcomes.append(("dir", depth_len[i], ex.errno))
                        break
                    os.close(fd)
                    fd = nfd
                    try:
                        got = read_at(fd, "leaf")
                        check_eq(got, pattern(100 + i, 50 + i),
                                 "leaf at depth %d" % i)
                        outcomes.append(("ok", depth_len[i], 0))
                    except OSError as ex:
                        outcomes.append(("leaf", depth_len[i], ex.errno))
            finally:
                os.close(fd)
            summary = ["%s@%d:%s" % (k, n, errno.errorcode.get(e, "ok"))
                       for k, n, e in outcomes]
            log("depths (path length beneath SOURCE): " + " ".join(summary))
            for kind, n, e in outcomes:
                if n < PATH_MAX - 96:
                    check_eq(e, 0, "path of %d bytes failed" % n)
                elif n >= PATH_MAX:
                    check_eq(e, errno.ENAMETOOLONG,
                             "path of %d bytes (over PATH_MAX)" % n)
                else:
                    check(e in (0, errno.ENAMETOOLONG),
                          "path of %d bytes: errno %s" % (n, e))
            check(any(e == errno.ENAMETOOLONG for _, _, e in outcomes),
                  "the chain never outgrew PATH_MAX")
            check(m.alive(), "daemon died")


def test_symlink_swap_race():
    seconds = variant_scale(6, 8)
    with scratch("escape-swap") as d:
        src, out, mnt = layout(d)
        os.makedirs(os.path.join(src, "d"))
        write_file(os.path.join(src, "d", "f"), pattern(7000, 5))
        os.symlink("../outside", os.path.join(src, "l"))
        write_file(os.path.join(src, "file"), pattern(8000, 6))
        os.symlink("../outside/f", os.path.join(src, "lf"))
        watched = [out, os.path.join(out, "f"), os.path.join(out, "secret")]
        opts = {"entry_timeout": 0, "attr_timeout": 0, "window_size": "64K"}
        stop = threading.Event()
        counts = {}
        bad = []
        lock = threading.Lock()

        def swapper():
            n = 0
            while not stop.is_set():
                rename_exchange(os.path.join(src, "d"),
                                os.path.join(src, "l"))
                rename_exchange(os.path.join(src, "file"),
                                os.path.join(src, "lf"))
                n += 1
            counts["swaps"] = n

        def reader(i):
            while not stop.is_set():
                for rel, want in (("d/f", pattern(7000, 5)),
                                  ("file", pattern(8000, 6)),
                                  ("l/f", pattern(7000, 5)),
                                  ("lf", pattern(8000, 6))):
                    try:
                        with open(os.path.join(mnt, rel), "rb") as f:
                            got = f.read()
                        key = "ok" if got == want else "BAD"
                        if got != want:
                            with lock:
                                bad.append((rel, got[:60]))
                    except OSError as e:
                        key = errno.errorcode.get(e.errno, str(e.errno))
                        if e.errno not in (errno.ENOENT, errno.ESTALE,
                                           errno.ENOTDIR, errno.ELOOP,
                                           errno.EIO):
                            with lock:
                                bad.append((rel, key))
                    with lock:
                        counts[key] = counts.get(key, 0) + 1

        with AccessWatch(watched) as w, Mount(src, mnt, opts) as m:
            threads = [threading.Thread(target=swapper, daemon=True)]
            threads += [threading.Thread(target=reader, args=(i,),
                                         daemon=True) for i in range(4)]
            for t in threads:
                t.start()
            time.sleep(seconds)
            stop.set()
            for t in threads:
                t.join(30)
            check(not any(t.is_alive() for t in threads),
                  "a reader hangs")
            time.sleep(0.1)
            ev = w.events()
            log("swap race: %s; inotify events outside: %d"
                % (counts, len(ev)))
            check(not bad, "wrong bytes or errno: %s" % bad[:5])
            check_eq(ev, [], "the sentinel outside SOURCE was accessed")
            check(counts.get("ok", 0) > 0 and counts.get("swaps", 0) > 100,
                  "the race did not run: %s" % counts)
            check(m.alive(), "daemon died")


if __name__ == "__main__":
    main([test_dotdot_and_odd_names, test_name_max_and_path_max,
          test_symlink_swap_race])
