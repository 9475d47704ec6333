#!/usr/bin/env python3
"""Mount like any filesystem (issue 3 §5-6).

mount -t fuse.smmapfs and an fstab line (mount(8) -> mount.fuse3 -> smmapfs),
fusermount3 -u and umount, SIGINT/SIGTERM unmount cleanly, SIGUSR1 logs the
statistics, --version and --help, the statistics attribute, a second mount
on the same mountpoint fails clearly, the man page renders.
"""
import contextlib
import os
import re
import shutil
import signal
import time

from smmapfs_test import (STATS_KEYS, STATS_XATTR, Mount, check, check_eq,
                          check_stats_bounds, diagnose, is_mounted, log, main,
                          pattern, run, scratch, smmapfs_bin, write_file)

HERE = os.path.dirname(os.path.abspath(__file__))
MAN = os.path.join(HERE, "..", "..", "docs", "smmapfs.1")
OPTIONS = ("window_size", "max_mapped", "max_handles", "max_fds",
           "entry_timeout", "attr_timeout", "negative_timeout", "read_ahead")


def small_source(d, n=3):
    src = os.path.join(d, "src")
    os.makedirs(src)
    files = {}
    for i in range(n):
        data = pattern(200000 + i * 77777, i)
        write_file(os.path.join(src, "f%d" % i), data)
        files["f%d" % i] = data
    return src, files


def read_all(mnt, files):
    for name, data in files.items():
        with open(os.path.join(mnt, name), "rb") as f:
            check(f.read() == data, "%s differs through the mount" % name)


# mount(8) runs helpers with the standard PATH, whatever ours is; this is
# its first directory.
HELPER_DIR = "/usr/local/sbin"


@contextlib.contextmanager
def smmapfs_on_helper_path():
    """Make `smmapfs` on mount(8)'s PATH the binary under test, for the
    duration; put back whatever was there."""
    target = os.path.join(HELPER_DIR, "smmapfs")
    saved = None
    os.makedirs(HELPER_DIR, exist_ok=True)
    if os.path.lexists(target):
        saved = target + ".smmapfs-test-saved"
        os.rename(target, saved)
    os.symlink(smmapfs_bin(), target)
    try:
        yield
    finally:
        os.unlink(target)
        if saved:
            os.rename(saved, target)


def daemon_pids(mnt):
    """Processes running smmapfs on mnt (daemonized ones have no handle)."""
    pids = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % p, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if os.fsencode(mnt) in argv and any(b"smmapfs" in a for a in argv[:1]):
            pids.append(int(p))
    return pids


def wait_gone(mnt, timeout=20):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not is_mounted(mnt) and not daemon_pids(mnt):
            return
        time.sleep(0.05)
    pids = daemon_pids(mnt)
    raise AssertionError("daemon or mount still there after unmount: %s\n%s"
                         % (pids, "\n".join(diagnose(p) for p in pids)))


def test_mount_read_unmount():
    with scratch("mounting") as d:
        src, files = small_source(d)
        with Mount(src, os.path.join(d, "mnt"),
                   {"window_size": "64K", "max_handles": 4}) as m:
            read_all(m.mnt, files)
            st = m.stats()
            check_stats_bounds(st, max_handles=4)
            check_eq(st["window_size"], 65536, "window_size")
            check(st["read_bytes"] >= sum(map(len, files.values())),
                  "read_bytes does not count the reads")


def test_version_and_help():
    p = run([smmapfs_bin(), "--version"])
    check(re.match(r"smmapfs \d+\.\d+\.\d+ ", p.stdout), "version: %r"
          % p.stdout)
    check("libfuse" in p.stdout, "version names libfuse")
    p = run([smmapfs_bin(), "--help"])
    for opt in OPTIONS:
        check(opt + "=" in p.stdout, "--help lacks %s" % opt)
    for words in ("default 8M", "default 4G", "default 4096", "default 16",
                  "SOURCE MOUNTPOINT", STATS_XATTR, "allow_other implies"):
        check(words in p.stdout, "--help lacks %r" % words)
    check("-f" in p.stdout and "-d" in p.stdout, "--help lacks FUSE options")


def test_stats_attribute():
    with scratch("stats") as d:
        src, files = small_source(d)
        opts = {"window_size": "128K", "max_mapped": "1M",
                "max_handles": "7", "max_fds": "3"}
        with Mount(src, os.path.join(d, "mnt"), opts) as m:
            read_all(m.mnt, files)
            p = run(["getfattr", "--absolute-names", "-n", STATS_XATTR,
                     "--only-values", m.mnt])
            st = dict(line.split("=", 1) for line in p.stdout.splitlines())
            for k in STATS_KEYS:
                check(k in st and st[k].isdigit(), "stats lack %s" % k)
            check_eq(int(st["window_size"]), 128 << 10, "window_size")
            check_eq(int(st["max_mapped"]), 1 << 20, "max_mapped")
            check_eq(int(st["max_handles"]), 7, "max_handles")
            check_eq(int(st["max_fds"]), 3, "max_fds")
            check(int(st["misses"]) > 0 and int(st["hits"]) >= 0,
                  "reads were not counted as misses/hits")
            check_stats_bounds(m.stats())
            # The attribute is not listed: a mirror lists SOURCE's only.
            check(STATS_XATTR not in os.listxattr(m.mnt),
                  "stats attribute listed on the root")
            # Only the root carries it.
            try:
                os.getxattr(m.path("f0"), STATS_XATTR)
                raise AssertionError("stats attribute on a file")
            except OSError as e:
                check(e.errno in (61,), "getxattr on a file: %s" % e)


def test_sigusr1_logs_stats():
    with scratch("usr1") as d:
        src, files = small_source(d)
        with Mount(src, os.path.join(d, "mnt")) as m:
            read_all(m.mnt, files)
            os.kill(m.pid, signal.SIGUSR1)
            end = time.monotonic() + 10
            while "stats:" not in m.log_text() and time.monotonic() < end:
                time.sleep(0.05)
            lines = [ln for ln in m.log_text().splitlines()
                     if "stats:" in ln]
            check_eq(len(lines), 1, "log lines after one SIGUSR1")
            for k in STATS_KEYS:
                check(" %s=" % k in lines[0] or ": %s=" % k in lines[0],
                      "SIGUSR1 line lacks %s" % k)
            check(m.alive(), "SIGUSR1 stopped the daemon")
            read_all(m.mnt, files)


@contextlib.contextmanager
def inherited_disposition(sig, handler):
    """Children started inside get @handler for @sig (as with nohup)."""
    old = signal.signal(sig, handler)
    try:
        yield
    finally:
        signal.signal(sig, old)


def test_signals_unmount_cleanly():
    # Each signal with its default disposition, whatever the test runner
    # (nohup, CI) left us: an ignored signal is inherited across exec.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        with scratch("sig") as d:
            src, files = small_source(d)
            with inherited_disposition(sig, signal.SIG_DFL):
                m = Mount(src, os.path.join(d, "mnt"))
            try:
                read_all(m.mnt, files)
                fd = os.open(m.path("f1"), os.O_RDONLY)  # busy is fine
                os.kill(m.pid, sig)
                rc = m.wait_exit(20, "20 s after %s" % sig.name)
                os.close(fd)
                check_eq(rc, 0, "exit status after %s" % sig.name)
                check(not is_mounted(m.mnt), "still mounted after %s"
                      % sig.name)
                m.unmounted = True
            finally:
                if not m.unmounted:
                    m.kill()


def test_nohup_keeps_serving():
    """Started with SIGHUP ignored (nohup), the daemon keeps it ignored:
    a hangup neither unmounts it nor disturbs reads."""
    with scratch("nohup") as d:
        src, files = small_source(d)
        with inherited_disposition(signal.SIGHUP, signal.SIG_IGN):
            m = Mount(src, os.path.join(d, "mnt"))
        with m:
            os.kill(m.pid, signal.SIGHUP)
            time.sleep(0.5)
            check(m.alive() and is_mounted(m.mnt),
                  "SIGHUP ended a daemon started under nohup")
            read_all(m.mnt, files)


def bdi_read_ahead_kb(mnt):
    dev = os.stat(mnt).st_dev
    with open("/sys/class/bdi/%d:%d/read_ahead_kb"
              % (os.major(dev), os.minor(dev))) as f:
        return int(f.read())


def test_read_ahead():
    """read_ahead reaches the mount's backing device, found through the
    mount table (a mountpoint with a space exercises its escapes), and the
    daemon still ends at once on a signal sent right after mounting."""
    if not os.access("/sys/class/bdi", os.W_OK):
        log("read_ahead: /sys/class/bdi not writable, only defaults checked")
    for opts, want in (({}, 1024), ({"read_ahead": "512K"}, 512),
                       ({"read_ahead": "8K"}, 8)):
        with scratch("ra") as d:
            src, files = small_source(d, n=1)
            with Mount(src, os.path.join(d, "mount point"), opts) as m:
                if os.access("/sys/class/bdi", os.W_OK):
                    check_eq(bdi_read_ahead_kb(m.mnt), want,
                             "read_ahead_kb with %s" % opts)
                read_all(m.mnt, files)
    with scratch("ra-sig") as d:
        src, files = small_source(d, n=1)
        m = Mount(src, os.path.join(d, "mnt"))
        try:
            os.kill(m.pid, signal.SIGTERM)
            check_eq(m.wait_exit(20, "after an early SIGTERM"), 0,
                     "exit status")
            m.unmounted = True
        finally:
            if not m.unmounted:
                m.kill()


def test_mount_t_and_umount():
    with scratch("mount-t") as d:
        src, files = small_source(d)
        mnt = os.path.join(d, "mnt")
        os.makedirs(mnt)
        with smmapfs_on_helper_path():
            run(["mount", "-t", "fuse.smmapfs", src, mnt, "-o",
                 "window_size=64K,max_handles=5,max_fds=2"])
        try:
            check(is_mounted(mnt), "mount -t did not mount")
            with open("/proc/self/mounts") as f:
                line = [ln for ln in f if " %s " % mnt in ln][0]
            check(" fuse.smmapfs " in line and " ro," in line,
                  "mounts line: %s" % line)
            check(line.startswith(src + " "), "fsname is SOURCE: " + line)
            read_all(mnt, files)
            st = dict(ln.split("=", 1) for ln in
                      os.getxattr(mnt, STATS_XATTR).decode().splitlines())
            check_eq(int(st["max_handles"]), 5, "options reached smmapfs")
        finally:
            run(["umount", mnt], check_rc=False)
        wait_gone(mnt)


def test_fstab_line():
    with scratch("fstab") as d:
        src, files = small_source(d)
        mnt = os.path.join(d, "mnt")
        os.makedirs(mnt)
        fstab = os.path.join(d, "fstab")
        with open(fstab, "w") as f:
            f.write("%s %s fuse.smmapfs noauto,window_size=256K,max_fds=4,"
                    "attr_timeout=2 0 0\n" % (src, mnt))
        with smmapfs_on_helper_path():
            run(["mount", "-T", fstab, mnt])
        try:
            check(is_mounted(mnt), "fstab mount did not mount")
            read_all(mnt, files)
            st = dict(ln.split("=", 1) for ln in
                      os.getxattr(mnt, STATS_XATTR).decode().splitlines())
            check_eq(int(st["window_size"]), 256 << 10, "fstab options")
        finally:
            run(["fusermount3", "-u", mnt], check_rc=False)
        wait_gone(mnt)


def test_second_mount_fails():
    with scratch("twice") as d:
        src, files = small_source(d)
        with Mount(src, os.path.join(d, "mnt")) as m:
            p = run([smmapfs_bin(), "-f", src, m.mnt], check_rc=False,
                    timeout=20)
            check(p.returncode != 0, "second mount succeeded")
            lines = p.stderr.strip().splitlines()
            check_eq(len(lines), 1, "error lines: %r" % p.stderr)
            check("already a mount point" in lines[0], lines[0])
            read_all(m.mnt, files)  # the first mount is unharmed


def test_man_page():
    check(os.path.exists(MAN), "docs/smmapfs.1 missing")
    if shutil.which("man") is None:
        log("man not installed; checking the source of the page only")
        with open(MAN) as f:
            text = f.read()
    else:
        text = run(["man", "-l", "-P", "cat", MAN],
                   env=dict(os.environ, MANWIDTH="80")).stdout
    for words in OPTIONS + ("SOURCE", "MOUNTPOINT", STATS_XATTR, "fstab",
                            "fusermount3"):
        check(words in text, "man page lacks %r" % words)


if __name__ == "__main__":
    main([test_mount_read_unmount, test_version_and_help, test_read_ahead,
          test_stats_attribute, test_sigusr1_logs_stats,
          test_signals_unmount_cleanly, test_nohup_keeps_serving,
          test_mount_t_and_umount,
          test_fstab_line, test_second_mount_fails, test_man_page])
