#!/usr/bin/env python3
"""Errors clients see (issue "Reliability and security").

Permission denied and vanished files give EACCES and ENOENT, never EIO by
accident:
  * through an allow_other mount (allow_other implies default_permissions)
    the unprivileged user `smmapfs-test` gets exactly what it gets in SOURCE
    itself: mode 000 and 0600 root files, a 0700 root directory, 0640 files
    of a group it is in or not in;
  * a daemon refused by SOURCE itself (root without CAP_DAC_OVERRIDE, no
    allow_other) answers EACCES, not EIO;
  * a file or directory deleted in SOURCE: ENOENT, within entry_timeout,
    after it, and with entry_timeout=0;
FIFOs and device nodes of SOURCE belong to the client's kernel: a client
blocked opening a FIFO through the mount (even a single-threaded one) does
not block others, data written into the mount's FIFO reaches its reader,
and the daemon never opens the SOURCE FIFO or device (inotify: no IN_OPEN,
no IN_ACCESS), not even when a regular file it knows is swapped for one.

The user `smmapfs-test` is created (useradd -r -M) when missing and left in
place.
"""
import errno
import os
import stat
import subprocess
import time

from smmapfs_test import (AccessWatch, Mount, as_user, call_with_timeout,
                          check, check_eq, log, main, pattern, scratch,
                          smmapfs_bin, unprivileged_user, variant_scale,
                          write_file)

SLOW = variant_scale(1, 3)
OTHER_GID = 4242  # a group the test user is not in (no name needed)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def outcome(fn):
    """fn() -> ('ok', value) or ('errno', n), comparable across runs."""
    try:
        return ("ok", fn())
    except OSError as e:
        return ("errno", e.errno)


def as_u(fn, user, groups=()):
    r = as_user(fn, user[0], user[1], groups=groups)
    if isinstance(r, tuple) and r and r[0] == "errno":
        return r
    return ("ok", r)


def build_permission_tree(src, user):
    uid, gid = user
    os.makedirs(src)
    os.chmod(src, 0o755)
    files = {}

    def mk(name, mode, owner=(0, 0), salt=0):
        data = pattern(20000 + salt, 900 + salt)
        p = os.path.join(src, name)
        write_file(p, data)
        os.chown(p, *owner)
        os.chmod(p, mode)
        files[name] = data

    mk("mode000", 0o000, salt=1)
    mk("root0600", 0o600, salt=2)
    mk("public0644", 0o644, salt=3)
    mk("group0640-root", 0o640, salt=4)
    mk("group0640-own", 0o640, owner=(0, gid), salt=5)
    mk("group0640-other", 0o640, owner=(0, OTHER_GID), salt=6)
    mk("own0400", 0o400, owner=(uid, gid), salt=7)
    locked = os.path.join(src, "locked0700")
    os.makedirs(locked)
    os.chmod(locked, 0o700)
    write_file(os.path.join(locked, "inner"), pattern(5000, 950), mode=0o644)
    files["locked0700/inner"] = pattern(5000, 950)
    return files


# name, expected outcome for the user (None: same as SOURCE, which the
# test also checks against an explicit expectation)
PERMISSION_CASES = [
    ("mode000", errno.EACCES),
    ("root0600", errno.EACCES),
    ("public0644", "ok"),
    ("group0640-root", errno.EACCES),
    ("group0640-own", "ok"),
    ("group0640-other", errno.EACCES),
    ("own0400", "ok"),
    ("locked0700/inner", errno.EACCES),
]


def test_allow_other_permissions():
    user = unprivileged_user()
    with scratch("err-perm") as d:
        os.chmod(d, 0o755)
        src = os.path.join(d, "src")
        files = build_permission_tree(src, user)
        with Mount(src, os.path.join(d, "mnt"), {"allow_other": None}) as m:
            with open("/proc/self/mountinfo") as f:
                line = [ln for ln in f if " %s " % m.mnt in ln][0]
            check("default_permissions" in line,
                  "allow_other without default_permissions: " + line)
            seen = []
            for name, want in PERMISSION_CASES:
                for groups in ((), (OTHER_GID,)):
                    in_src = as_u(lambda: read_file(os.path.join(src, name)),
                                  user, groups)
                    via = as_u(lambda: read_file(m.path(name)), user, groups)
                    exp = want
                    if groups and name == "group0640-other":
                        exp = "ok"  # now in the group
                    if exp == "ok":
                        check_eq(via, ("ok", files[name]),
                                 "%s groups=%s through the mount"
                                 % (name, groups))
                    else:
                        check_eq(via, ("errno", exp),
                                 "%s groups=%s through the mount"
                                 % (name, groups))
                    check_eq(via[0], in_src[0], "%s: mount vs SOURCE" % name)
                    if via[0] == "errno":
                        check_eq(via, in_src, "%s: errno differs from "
                                 "SOURCE's" % name)
                    seen.append("%s%s=%s" % (name, "+grp" if groups else "",
                                             "ok" if via[0] == "ok" else
                                             errno.errorcode[via[1]]))
                # access(2) agrees with open(2).
                acc = as_user(lambda: os.access(m.path(name), os.R_OK),
                              *user)
                check_eq(acc, want == "ok", "access(R_OK) on %s" % name)
            # The 0700 directory itself: no listing, no lookup inside.
            for what, fn in (
                    ("listdir", lambda: os.listdir(m.path("locked0700"))),
                    ("stat inside",
                     lambda: os.stat(m.path("locked0700", "inner"))),
                    ("chdir", lambda: os.chdir(m.path("locked0700")))):
                check_eq(as_u(fn, user), ("errno", errno.EACCES),
                         "%s on the 0700 directory" % what)
            # Root still reads everything (as in SOURCE).
            for name, data in files.items():
                check(read_file(m.path(name)) == data, "root reads " + name)
            # The user cannot see the statistics of a mount it does not own
            # any more than any other attribute: it is readable (the root
            # is 0755), but not writable.
            check(m.alive(), "daemon died")
            log("allow_other: " + " ".join(seen))


def wrapper_without_dac(d):
    """A wrapper 'binary' running the daemon as root without
    CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH: SOURCE's modes then apply to
    the daemon itself.  (An unprivileged daemon cannot be used: /dev/fuse
    is mode 0600 here and libfuse 3.14 only falls back to fusermount3 when
    /dev/fuse is missing.)"""
    w = os.path.join(d, "smmapfs-no-dac")
    caps = "-dac_override,-dac_read_search"
    with open(w, "w") as f:
        f.write("#!/bin/sh\nexec setpriv --bounding-set=%s --inh-caps=%s "
                "%s \"$@\"\n" % (caps, caps, smmapfs_bin()))
    os.chmod(w, 0o755)
    return w


def test_daemon_refused_by_source_eacces():
    """The daemon itself is refused by SOURCE: the client gets EACCES (the
    error of SOURCE), not EIO.  No allow_other, hence no
    default_permissions: the kernel lets every request through."""
    user = unprivileged_user()
    with scratch("err-nodac") as d:
        src = os.path.join(d, "src")
        os.makedirs(src)
        files = {}
        cases = [  # name, mode, owner, expected
            ("root000", 0o000, 0, errno.EACCES),
            ("user0600", 0o600, user[0], errno.EACCES),
            ("user0644", 0o644, user[0], "ok"),
            ("root0600", 0o600, 0, "ok"),
            ("userdir0700/inner", 0o644, 0, errno.EACCES),
        ]
        os.makedirs(os.path.join(src, "userdir0700"))
        for i, (name, mode, owner, _) in enumerate(cases):
            files[name] = pattern(30000 + i, 980 + i)
            p = os.path.join(src, name)
            write_file(p, files[name])
            os.chown(p, owner, owner and user[1])
            os.chmod(p, mode)
        os.chown(os.path.join(src, "userdir0700"), *user)
        os.chmod(os.path.join(src, "userdir0700"), 0o700)
        saved = os.environ.get("SMMAPFS_BIN")
        os.environ["SMMAPFS_BIN"] = wrapper_without_dac(d)
        try:
            m = Mount(src, os.path.join(d, "mnt"), {"window_size": "64K"})
        finally:
            os.environ["SMMAPFS_BIN"] = saved
        with m:
            status = open("/proc/%d/status" % m.pid).read()
            eff = int([ln for ln in status.splitlines()
                       if ln.startswith("CapEff:")][0].split()[1], 16)
            check(not eff & 0b110, "daemon still has DAC capabilities: %x"
                  % eff)
            results = []
            for name, _, _, want in cases:
                via = outcome(lambda: read_file(m.path(name)))
                if want == "ok":
                    check_eq(via, ("ok", files[name]), name)
                else:
                    check_eq(via, ("errno", want),
                             "%s (daemon refused by SOURCE)" % name)
                results.append("%s=%s" % (name, "ok" if via[0] == "ok"
                                          else errno.errorcode[via[1]]))
            check_eq(outcome(lambda: os.listdir(m.path("userdir0700"))),
                     ("errno", errno.EACCES), "listdir of a 0700 directory")
            # A file made unreadable after the client opened it: the next
            # uncached read fails with EACCES, not EIO; readable again,
            # it reads again.
            fd = os.open(m.path("root0600"), os.O_RDONLY)
            os.chmod(os.path.join(src, "root0600"), 0o000)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            r = outcome(lambda: os.pread(fd, 4096, 8192))
            check(r == ("ok", files["root0600"][8192:12288])
                  or r == ("errno", errno.EACCES),
                  "read after chmod 000: %s" % (r,))
            os.chmod(os.path.join(src, "root0600"), 0o600)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            check_eq(outcome(lambda: os.pread(fd, 4096, 16384)),
                     ("ok", files["root0600"][16384:20480]),
                     "read after chmod back")
            os.close(fd)
            results.append("chmod-000-while-open=%s" % (
                "ok" if r[0] == "ok" else errno.errorcode[r[1]]))
            log("daemon without DAC capabilities: " + " ".join(results))
            log_text = m.log_text()
            check("Input/output" not in log_text, "EIO logged: " + log_text)


def test_vanished_files_enoent():
    cases = [("entry_timeout=1", {"window_size": "64K"}),
             ("entry_timeout=0", {"window_size": "64K", "entry_timeout": 0,
                                  "attr_timeout": 0})]
    for label, opts in cases:
        with scratch("err-gone") as d:
            src = os.path.join(d, "src")
            os.makedirs(os.path.join(src, "dir", "sub"))
            for name in ("now", "later", "opened"):
                write_file(os.path.join(src, name), pattern(100000, 1))
            write_file(os.path.join(src, "dir", "sub", "leaf"),
                       pattern(3000, 2))
            with Mount(src, os.path.join(d, "mnt"), opts) as m:
                # The kernel knows every name (lookups cached).
                for rel in ("now", "later", "opened", "dir/sub/leaf"):
                    os.stat(m.path(rel))
                check(read_file(m.path("now")) == pattern(100000, 1), "now")
                held = os.open(m.path("opened"), os.O_RDONLY)
                os.unlink(os.path.join(src, "now"))
                os.unlink(os.path.join(src, "later"))
                os.unlink(os.path.join(src, "opened"))
                subprocess.run(["rm", "-r", os.path.join(src, "dir")],
                               check=True)
                # At once (the kernel may still cache the names).
                for rel in ("now", "dir/sub/leaf"):
                    check_eq(outcome(lambda: read_file(m.path(rel)))[1],
                             errno.ENOENT, "%s: open of %s just deleted"
                             % (label, rel))
                time.sleep(1.3)  # past entry_timeout and attr_timeout
                for rel in ("now", "later", "dir/sub/leaf", "dir/sub",
                            "dir", "opened"):
                    check_eq(outcome(lambda: os.stat(m.path(rel)))[1],
                             errno.ENOENT, "%s: stat of %s" % (label, rel))
                    check_eq(outcome(lambda: os.open(m.path(rel),
                                                     os.O_RDONLY))[1],
                             errno.ENOENT, "%s: open of %s" % (label, rel))
                check_eq(outcome(lambda: os.listdir(m.path("dir")))[1],
                         errno.ENOENT, "%s: listdir of a deleted directory"
                         % label)
                # A descriptor opened before the unlink reads the old bytes
                # or fails with EIO/ENOENT/ESTALE, never garbage.
                r = outcome(lambda: os.pread(held, 100000, 0))
                os.close(held)
                if r[0] == "ok":
                    check(r[1] == pattern(100000, 1)[:len(r[1])],
                          "%s: garbage from a deleted open file" % label)
                else:
                    check(r[1] in (errno.EIO, errno.ENOENT, errno.ESTALE),
                          "%s: held descriptor errno %s" % (label, r[1]))
                # Recreated: the new content.
                write_file(os.path.join(src, "later"), pattern(7000, 3))
                time.sleep(1.3 if label.endswith("1") else 0)
                check(read_file(m.path("later")) == pattern(7000, 3),
                      "%s: recreated file" % label)
                check(m.alive(), "daemon died")
                log("%s: deleted files ENOENT; held descriptor: %s"
                    % (label, r[0] if r[0] == "ok"
                       else errno.errorcode[r[1]]))


def make_specials(src):
    os.mkfifo(os.path.join(src, "fifo"))
    os.mknod(os.path.join(src, "null"), 0o666 | stat.S_IFCHR,
             os.makedev(1, 3))
    os.mknod(os.path.join(src, "zero"), 0o666 | stat.S_IFCHR,
             os.makedev(1, 5))
    os.mknod(os.path.join(src, "loop"), 0o660 | stat.S_IFBLK,
             os.makedev(7, 0))
    return [os.path.join(src, n) for n in ("fifo", "null", "zero", "loop")]


def test_fifo_and_devices_stay_in_client():
    with scratch("err-fifo") as d:
        src = os.path.join(d, "src")
        os.makedirs(src)
        files = {}
        for i in range(4):
            files["f%d" % i] = pattern(200000 + i, 960 + i)
            write_file(os.path.join(src, "f%d" % i), files["f%d" % i])
        specials = make_specials(src)
        with AccessWatch(specials) as w, \
                Mount(src, os.path.join(d, "mnt"),
                      {"window_size": "64K"}, args=["-s"]) as m:
            st = os.stat(m.path("fifo"))
            check(stat.S_ISFIFO(st.st_mode), "fifo type")
            st = os.stat(m.path("null"))
            check(stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3),
                  "null type/rdev")
            st = os.stat(m.path("loop"))
            check(stat.S_ISBLK(st.st_mode), "block device type")
            for n in ("fifo", "null", "zero", "loop"):
                os.listxattr(m.path(n))
            # A client blocks opening the FIFO for reading: in its own
            # kernel, the daemon (one thread, -s) is not involved.
            cat = subprocess.Popen(["cat", m.path("fifo")],
                                   stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE)
            try:
                time.sleep(1.0)
                check(cat.poll() is None, "cat of the FIFO did not block")
                for name, data in files.items():
                    got = call_with_timeout(10 * SLOW, read_file,
                                            m.path(name))
                    check(got == data, "%s while a FIFO open blocks" % name)
                call_with_timeout(10 * SLOW, os.listdir, m.mnt)
                # The mount's FIFO works within the client's kernel.
                fd = os.open(m.path("fifo"), os.O_WRONLY | os.O_NONBLOCK)
                os.write(fd, b"through the client's fifo\n")
                os.close(fd)
                out, err = cat.communicate(timeout=10 * SLOW)
                check_eq(out, b"through the client's fifo\n", "FIFO data")
                check_eq(cat.returncode, 0, "cat status")
            finally:
                if cat.poll() is None:
                    cat.kill()
                    cat.wait()
            # Non-blocking reader open: immediate, empty.
            fd = os.open(m.path("fifo"), os.O_RDONLY | os.O_NONBLOCK)
            check_eq(os.read(fd, 10), b"", "empty FIFO read")
            os.close(fd)
            # Devices: the mount is nodev.
            for n in ("null", "zero", "loop"):
                check_eq(outcome(lambda: os.open(m.path(n),
                                                 os.O_RDONLY))[1],
                         errno.EACCES, "open of device %s (nodev)" % n)
            time.sleep(0.2)
            ev = w.events()
            check_eq(ev, [], "the SOURCE FIFO/devices were opened or read")
            check(m.alive(), "daemon died")
            log("FIFO and devices: client-side only, 0 inotify events")


def test_special_swapped_in_is_not_opened():
    """A regular file the kernel knows, replaced in SOURCE by a FIFO or a
    device node: opening or reading it through the mount must not make the
    daemon open the FIFO/device (that would wake a blocked writer or touch
    a device), and the client gets the new type or an error - never a
    hang."""
    with scratch("err-swap") as d:
        src = os.path.join(d, "src")
        os.makedirs(src)
        for n in ("a", "b", "c"):
            write_file(os.path.join(src, n), pattern(100000, 970))
        spare = os.path.join(d, "spare")
        os.makedirs(spare)
        os.mkfifo(os.path.join(spare, "fifo"))
        os.mknod(os.path.join(spare, "null"), 0o666 | stat.S_IFCHR,
                 os.makedev(1, 3))
        os.mkfifo(os.path.join(spare, "fifo2"))
        # Long caching: the kernel keeps believing the names are files.
        with Mount(src, os.path.join(d, "mnt"),
                   {"window_size": "64K", "entry_timeout": 60,
                    "attr_timeout": 60}) as m:
            held = os.open(m.path("c"), os.O_RDONLY)
            for n in ("a", "b", "c"):
                os.stat(m.path(n))
            watched = [os.path.join(spare, n) for n in
                       ("fifo", "null", "fifo2")]
            with AccessWatch(watched) as w:
                os.rename(os.path.join(spare, "fifo"),
                          os.path.join(src, "a"))
                os.rename(os.path.join(spare, "null"),
                          os.path.join(src, "b"))
                os.rename(os.path.join(spare, "fifo2"),
                          os.path.join(src, "c"))
                res = {}
                for n in ("a", "b"):
                    res[n] = call_with_timeout(
                        10 * SLOW, outcome,
                        lambda: os.close(os.open(m.path(n),
                                                 os.O_RDONLY |
                                                 os.O_NONBLOCK)))
                # The descriptor opened before the swap: read a range
                # never read (mapping a window opens the name again).
                os.posix_fadvise(held, 0, 0, os.POSIX_FADV_DONTNEED)
                res["c (held)"] = call_with_timeout(
                    10 * SLOW, outcome, lambda: os.pread(held, 4096, 70000))
                time.sleep(0.2)
                ev = w.events()
            os.close(held)
            log("swapped specials: %s; inotify events %s" % (res, ev))
            for n, r in res.items():
                if r[0] == "errno":
                    check(r[1] in (errno.ENOENT, errno.ESTALE, errno.EIO,
                                   errno.EACCES, errno.ENXIO),
                          "%s: errno %s" % (n, errno.errorcode[r[1]]))
                elif n == "c (held)":
                    check(r[1] == pattern(100000, 970)[70000:74096],
                          "garbage from a swapped file")
            check_eq(ev, [], "the daemon opened a FIFO/device swapped into "
                     "SOURCE")
            check(m.alive(), "daemon died")


if __name__ == "__main__":
    main([test_allow_other_permissions, test_daemon_refused_by_source_eacces,
          test_vanished_files_enoent, test_fifo_and_devices_stay_in_client,
          test_special_swapped_in_is_not_opened])
