"""smmapfs_test - shared helpers for the mount and faults suites.

Every test program is a plain Python 3 script run by meson; it exits 0 on
success, 1 on failure and 77 (skip) only when /dev/fuse is absent.  Helpers
here start the daemon in the foreground on a real FUSE mount, read its
statistics, build the standard generated tree, snapshot a tree to prove
SOURCE unchanged, and watch a file for any access (inotify).

Environment:
  SMMAPFS_BIN   the daemon to test (set by meson; the asan/tsan setups point
                it at the sanitizer twins)
  SMMAPFS_TMP   where scratch directories go (default: $TMPDIR or /tmp)
  SMMAPFS_KEEP  keep scratch directories and daemon logs after the run
"""

import contextlib
import ctypes
import ctypes.util
import errno
import hashlib
import os
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import time
import traceback

PAGE = os.sysconf("SC_PAGE_SIZE")
STATS_XATTR = "user.smmapfs.stats"
# Keys the stats attribute must carry (issue: observability).
STATS_KEYS = (
    "mapped_bytes", "max_mapped", "mappings", "max_handles", "fds", "max_fds",
    "window_size", "open_files", "hits", "misses", "evictions",
    "fallback_reads", "read_bytes",
)


# ---------------------------------------------------------------------------
# test program plumbing
# ---------------------------------------------------------------------------

class Skip(Exception):
    """Raised to end a test program with exit status 77."""


def log(msg):
    """A diagnostic line (stderr; stdout is free for tools' output)."""
    print("# " + msg, file=sys.stderr, flush=True)


def need_fuse():
    """Skip (exit 77) when this machine cannot mount FUSE at all."""
    if not os.path.exists("/dev/fuse"):
        raise Skip("/dev/fuse is absent: FUSE mounts are impossible here")
    if shutil.which("fusermount3") is None:
        raise Skip("fusermount3 is not installed (package fuse3)")


def main(tests):
    """Run test functions in order; report and set the exit status.

    `tests` is a list of callables.  Each gets no arguments.  A failing
    assertion stops that test only; the program fails if any failed.
    """
    try:
        need_fuse()
    except Skip as e:
        print("SKIP: " + str(e), file=sys.stderr)
        sys.exit(77)
    failed = 0
    for t in tests:
        name = t.__name__
        t0 = time.monotonic()
        try:
            t()
        except Skip as e:
            log("%s: skipped: %s" % (name, e))
            continue
        except Exception:  # noqa: BLE001 - report every failure
            failed += 1
            log("%s: FAILED" % name)
            traceback.print_exc()
            continue
        log("%s: ok (%.1f s)" % (name, time.monotonic() - t0))
    if failed:
        log("%d of %d tests failed" % (failed, len(tests)))
        sys.exit(1)
    sys.exit(0)


def check(cond, msg):
    """assert that survives python -O."""
    if not cond:
        raise AssertionError(msg)


def check_eq(got, want, what):
    if got != want:
        raise AssertionError("%s: got %r, want %r" % (what, got, want))


def run(cmd, check_rc=True, **kw):
    """Run a command (list), return CompletedProcess with text output."""
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    kw.setdefault("text", True)
    p = subprocess.run(cmd, **kw)
    if check_rc and p.returncode != 0:
        raise AssertionError("command failed (%d): %s\nstdout: %s\nstderr: %s"
                             % (p.returncode, " ".join(map(str, cmd)),
                                (p.stdout or "")[-2000:],
                                (p.stderr or "")[-2000:]))
    return p


def smmapfs_bin():
    b = os.environ.get("SMMAPFS_BIN")
    if not b:
        here = os.path.dirname(os.path.abspath(__file__))
        b = os.path.join(here, "..", "..", "build", "src", "fs", "smmapfs")
    return os.path.abspath(b)


@contextlib.contextmanager
def scratch(tag):
    """A fresh scratch directory, removed afterwards unless SMMAPFS_KEEP."""
    base = os.environ.get("SMMAPFS_TMP") or tempfile.gettempdir()
    d = tempfile.mkdtemp(prefix="smmapfs-%s-" % tag, dir=base)
    try:
        yield d
    finally:
        if not os.environ.get("SMMAPFS_KEEP"):
            # A mount left behind must not make rmtree walk into it.
            for sub in sorted(os.listdir(d)):
                p = os.path.join(d, sub)
                if is_mounted(p):
                    subprocess.run(["fusermount3", "-u", "-z", p],
                                   stderr=subprocess.DEVNULL)
            shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------------------
# mounts
# ---------------------------------------------------------------------------

def _unescape_mountinfo(s):
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 3 < len(s) and s[i + 1:i + 4].isdigit():
            out.append(chr(int(s[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def is_mounted(path):
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            if _unescape_mountinfo(line.split()[4]) == path:
                return True
    return False


def diagnose(pid):
    """Where a daemon that should have exited is stuck: each thread's
    state, kernel stack and (when gdb is installed) user stack."""
    out = ["diagnosis of pid %d:" % pid]
    try:
        tids = sorted(os.listdir("/proc/%d/task" % pid), key=int)
    except OSError as e:
        return "pid %d: %s" % (pid, e)
    for tid in tids:
        base = "/proc/%d/task/%s/" % (pid, tid)
        parts = []
        for name in ("comm", "wchan", "syscall", "stack"):
            try:
                with open(base + name) as f:
                    parts.append("%s: %s" % (name, f.read().strip()))
            except OSError:
                pass
        out.append("thread %s\n  %s" % (tid, "\n  ".join(parts)))
    if shutil.which("gdb"):
        with contextlib.suppress(Exception):
            r = subprocess.run(["gdb", "-p", str(pid), "-batch", "-ex",
                                "thread apply all bt"], timeout=60,
                               stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
            out.append(r.stdout)
    return "\n".join(out)


class Mount:
    """A running smmapfs daemon (foreground) with its mountpoint.

    m = Mount(source, mnt, opts={"window_size": "64K"}); ... m.unmount()
    or as a context manager.  The daemon's stderr goes to a log file;
    m.log_text() returns it.  On unmount the daemon must exit 0.
    """

    def __init__(self, source, mnt, opts=None, args=(), env=None,
                 wait=True, timeout=20, expect_fail=False):
        self.source = source
        self.mnt = mnt
        self.logpath = mnt.rstrip("/") + ".log"
        os.makedirs(mnt, exist_ok=True)
        cmd = [smmapfs_bin(), "-f"]
        o = ",".join(k if v is None else "%s=%s" % (k, v)
                     for k, v in (opts or {}).items())
        if o:
            cmd += ["-o", o]
        cmd += list(args) + [source, mnt]
        self.cmd = cmd
        self._log = open(self.logpath, "w")
        e = dict(os.environ)
        if env:
            e.update(env)
        self.proc = subprocess.Popen(cmd, stdout=self._log,
                                     stderr=subprocess.STDOUT, env=e,
                                     start_new_session=True)
        self.pid = self.proc.pid
        self.unmounted = False
        if wait:
            self.wait_mounted(timeout)

    def wait_mounted(self, timeout=20):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if is_mounted(self.mnt):
                return
            if self.proc.poll() is not None:
                raise AssertionError("smmapfs exited (%s) before mounting:\n%s"
                                     % (self.proc.returncode, self.log_text()))
            time.sleep(0.05)
        raise AssertionError("smmapfs did not mount within %ss:\n%s"
                             % (timeout, self.log_text()))

    def log_text(self):
        if not self._log.closed:
            self._log.flush()
        with open(self.logpath, errors="replace") as f:
            return f.read()

    def stats(self):
        """The statistics attribute as a dict of ints."""
        raw = os.getxattr(self.mnt, STATS_XATTR).decode()
        out = {}
        for line in raw.splitlines():
            k, _, v = line.partition("=")
            out[k] = int(v)
        return out

    def path(self, *parts):
        return os.path.join(self.mnt, *parts)

    def alive(self):
        return self.proc.poll() is None

    def proc_fds(self):
        """Descriptors the daemon holds, as {fd: target}."""
        d = "/proc/%d/fd" % self.pid
        out = {}
        for name in os.listdir(d):
            with contextlib.suppress(OSError):
                out[int(name)] = os.readlink(os.path.join(d, name))
        return out

    def source_fds(self):
        """Descriptors on files beneath SOURCE (the root's O_PATH aside)."""
        src = os.path.realpath(self.source)
        return {fd: t for fd, t in self.proc_fds().items()
                if (t == src or t.startswith(src + "/")) and t != src}

    def source_maps(self):
        """Mappings of files beneath SOURCE: list of (start, end, path)."""
        src = os.path.realpath(self.source) + "/"
        out = []
        with open("/proc/%d/maps" % self.pid) as f:
            for line in f:
                parts = line.split(None, 5)
                if len(parts) == 6 and parts[5].startswith(src):
                    lo, hi = (int(x, 16) for x in parts[0].split("-"))
                    out.append((lo, hi, parts[5].rstrip("\n")))
        return out

    def unmount(self, timeout=30):
        """fusermount3 -u, then the daemon must exit with status 0."""
        if self.unmounted:
            return
        self.unmounted = True
        p = subprocess.run(["fusermount3", "-u", self.mnt],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
        rc = self.wait_exit(timeout, "after unmount")
        self._log.close()
        check(p.returncode == 0, "fusermount3 -u failed: %s" % p.stderr)
        check(rc == 0, "smmapfs exited with %s after unmount:\n%s"
              % (rc, self.log_text()))
        check(not is_mounted(self.mnt), "still mounted after unmount")

    def wait_exit(self, timeout, what):
        """The daemon's exit status; if it is still running after
        @timeout seconds, say where it is stuck, kill it and fail."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            why = diagnose(self.pid)
            self.kill()
            raise AssertionError("smmapfs did not exit %s\n%s\nlog:\n%s"
                                 % (what, why, self.log_text()))

    def kill(self):
        """Last resort: lazy unmount and SIGKILL."""
        subprocess.run(["fusermount3", "-u", "-z", self.mnt],
                       stderr=subprocess.DEVNULL)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.proc.wait(10)
        self.unmounted = True

    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        if et is None:
            self.unmount()
        elif not self.unmounted:
            log("daemon log:\n" + self.log_text()[-4000:])
            self.kill()
        return False


def check_stats_bounds(st, max_mapped=None, max_handles=None, max_fds=None):
    """The daemon's statistics never exceed their bounds."""
    for key in STATS_KEYS:
        check(key in st, "stats lack %s" % key)
    check(st["mapped_bytes"] <= st["max_mapped"], "mapped_bytes over bound")
    check(st["peak_mapped_bytes"] <= st["max_mapped"], "peak over bound")
    check(st["mappings"] <= st["max_handles"], "mappings over bound")
    check(st["peak_mappings"] <= st["max_handles"], "peak mappings over")
    check(st["fds"] <= st["max_fds"], "fds over bound")
    check(st["peak_fds"] <= st["max_fds"], "peak fds over bound")
    if max_mapped is not None:
        check_eq(st["max_mapped"], max_mapped, "max_mapped")
    if max_handles is not None:
        check_eq(st["max_handles"], max_handles, "max_handles")
    if max_fds is not None:
        check_eq(st["max_fds"], max_fds, "max_fds")


# ---------------------------------------------------------------------------
# trees
# ---------------------------------------------------------------------------

def pattern(size, salt=0):
    """Deterministic pseudo-random bytes (never zeros, never periodic)."""
    return hashlib.shake_256(b"smmapfs-pattern-%d" % salt).digest(size)


def write_file(path, data, mode=None):
    with open(path, "wb") as f:
        f.write(data)
    if mode is not None:
        os.chmod(path, mode)


def make_tree(root, window=64 * 1024, big_sparse=3 << 30):
    """The standard generated tree (issue 3 §7).  Returns a dict of notes.

    Contents: empty file, 1 byte, page-1, page, page+1, files spanning many
    windows of `window` bytes (and one exactly N windows), a sparse file of
    `big_sparse` bytes with data at both ends and in the middle, names with
    spaces and UTF-8, absolute/relative/dangling symlinks, hard links, a
    deep directory chain, xattrs, a FIFO, an unreadable file (mode 000).
    """
    os.makedirs(root, exist_ok=True)
    j = lambda *p: os.path.join(root, *p)  # noqa: E731
    write_file(j("empty"), b"")
    write_file(j("one"), b"x")
    write_file(j("page-1"), pattern(PAGE - 1, 1))
    write_file(j("page"), pattern(PAGE, 2))
    write_file(j("page+1"), pattern(PAGE + 1, 3))
    write_file(j("windows-7.5"), pattern(window * 15 // 2, 4))
    write_file(j("windows-4"), pattern(window * 4, 5))
    write_file(j("many-windows"), pattern(window * 40 + 123, 6))
    with open(j("sparse"), "wb") as f:
        f.write(pattern(PAGE * 3, 7))
        f.seek(big_sparse // 2)
        f.write(pattern(window + 17, 8))
        f.truncate(big_sparse)
        f.seek(big_sparse - 5000)
        f.write(pattern(5000, 9))
    os.makedirs(j("names"), exist_ok=True)
    write_file(j("names", "with space.txt"), b"space\n")
    write_file(j("names", "ünïcödé ✓.txt"), "utf-8 ✓\n".encode())
    write_file(j("names", "-leading-dash"), b"dash\n")
    os.makedirs(j("links"), exist_ok=True)
    os.symlink("/etc/hostname", j("links", "absolute"))
    os.symlink("../one", j("links", "relative"))
    os.symlink("does/not/exist", j("links", "dangling"))
    os.symlink("../names", j("links", "dir-link"))
    os.link(j("page"), j("links", "hard-page"))
    os.link(j("many-windows"), j("names", "hard many"))
    deep = j(*["d%d" % i for i in range(24)])
    os.makedirs(deep, exist_ok=True)
    write_file(os.path.join(deep, "leaf"), pattern(3 * PAGE + 5, 10))
    os.setxattr(j("page"), "user.color", b"blue")
    os.setxattr(j("names"), "user.kind", b"directory attribute")
    os.setxattr(j("one"), "user.empty", b"")
    os.mkfifo(j("fifo"))
    write_file(j("secret"), b"root only\n", mode=0o000)
    return {"window": window, "sparse": big_sparse}


def tree_snapshot(root, with_xattrs=True):
    """Everything observable about a tree: {relpath: description}.

    Two snapshots are equal iff no file, link, mode, size, content, xattr
    or timestamp (mtime) changed.  Content is hashed (sparse files too).
    """
    snap = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames) + ["."]:
            p = os.path.join(dirpath, name) if name != "." else dirpath
            rel = os.path.relpath(p, root)
            if rel in snap:
                continue
            st = os.lstat(p)
            d = [stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode),
                 st.st_size, st.st_mtime_ns, st.st_nlink, st.st_uid]
            if stat.S_ISLNK(st.st_mode):
                d.append(os.readlink(p))
            elif stat.S_ISREG(st.st_mode):
                h = hashlib.sha256()
                with open(p, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
                d.append(h.hexdigest())
            if with_xattrs and not stat.S_ISLNK(st.st_mode):
                with contextlib.suppress(OSError):
                    d.append(sorted((k, os.getxattr(p, k))
                                    for k in os.listxattr(p)))
            snap[rel] = tuple(map(str, d))
    return snap


def diff_snapshots(a, b):
    """Human-readable differences between two tree_snapshot()s."""
    out = []
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            out.append("%s: %s -> %s" % (k, a.get(k), b.get(k)))
    return out


# ---------------------------------------------------------------------------
# access watching: prove a file is never opened or read
# ---------------------------------------------------------------------------

IN_ACCESS = 0x001
IN_OPEN = 0x020
IN_NONBLOCK = os.O_NONBLOCK


class AccessWatch:
    """inotify on paths: collects IN_OPEN/IN_ACCESS events by anyone.

    with AccessWatch([sentinel]) as w: ...; w.events() -> list of names
    """

    def __init__(self, paths):
        self.libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self.fd = self.libc.inotify_init1(IN_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.wd = {}
        for p in paths:
            wd = self.libc.inotify_add_watch(self.fd, os.fsencode(p),
                                             IN_ACCESS | IN_OPEN)
            if wd < 0:
                raise OSError(ctypes.get_errno(), "inotify_add_watch " + p)
            self.wd[wd] = p
        self.seen = []

    def events(self):
        while True:
            try:
                buf = os.read(self.fd, 65536)
            except BlockingIOError:
                break
            i = 0
            while i + 16 <= len(buf):
                wd, mask, _cookie, ln = struct.unpack_from("iIII", buf, i)
                self.seen.append((self.wd.get(wd, "?"), mask))
                i += 16 + ln
        return list(self.seen)

    def close(self):
        os.close(self.fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def errno_of(fn, *args, **kw):
    """Call fn; return the OSError errno it raised, or None."""
    try:
        fn(*args, **kw)
    except OSError as e:
        return e.errno
    return None


def call_with_timeout(timeout, fn, *args, **kw):
    """fn(*args, **kw) in a daemon thread, bounded in time.

    Returns fn's result or re-raises its exception.  A call still running
    after `timeout` seconds raises AssertionError (the thread stays behind,
    blocked; kill the daemon to release it): a read through the mount must
    never hang.
    """
    import threading
    box = {}

    def body():
        try:
            box["ret"] = fn(*args, **kw)
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            box["exc"] = e

    t = threading.Thread(target=body, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise AssertionError("%s did not return within %s s (hang)"
                             % (getattr(fn, "__name__", fn), timeout))
    if "exc" in box:
        raise box["exc"]
    return box.get("ret")


def drop_page_cache(fd):
    """Drop the kernel's clean cached pages of an open file (the next
    reads of a mount file then reach the daemon)."""
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


def rename_exchange(a, b):
    """Atomically swap the names a and b (renameat2 RENAME_EXCHANGE)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    at_fdcwd, rename_exchange_flag = -100, 2
    if libc.renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b),
                      rename_exchange_flag) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), a)


def variant_scale(full, reduced):
    """`reduced` under a sanitizer variant (SMMAP_TEST_VARIANT), else
    `full`: the sanitized daemon is several times slower."""
    return reduced if os.environ.get("SMMAP_TEST_VARIANT") else full



# ---------------------------------------------------------------------------
# users, processes (faults suite)
# ---------------------------------------------------------------------------

TEST_USER = "smmapfs-test"


def unprivileged_user():
    """(uid, gid) of the unprivileged system user `smmapfs-test`, created
    (useradd -r -M, no login) when missing; it is left in place after."""
    import pwd
    try:
        pw = pwd.getpwnam(TEST_USER)
    except KeyError:
        if os.geteuid() != 0:
            raise Skip("user %s is missing and we are not root" % TEST_USER)
        subprocess.run(["useradd", "-r", "-M", "-s", "/usr/sbin/nologin",
                        TEST_USER], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
        pw = pwd.getpwnam(TEST_USER)
    return pw.pw_uid, pw.pw_gid


def as_user(fn, uid, gid, groups=(), timeout=30):
    """Run fn() in a forked child with the given uid/gid/groups; return its
    result (anything repr()/eval()-able: ints, bytes, str, tuples, None).
    An OSError in fn comes back as ("errno", errno).  The child is killed
    after `timeout` seconds (AssertionError: it hung)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: no threads, no Python-level locks needed
        code = 0
        try:
            os.close(r)
            os.setgroups(list(groups))
            os.setgid(gid)
            os.setuid(uid)
            try:
                out = repr(fn())
            except OSError as e:
                out = repr(("errno", e.errno))
            data = out.encode()
            while data:
                data = data[os.write(w, data):]
        except BaseException:  # noqa: BLE001 - reported as exit status
            code = 99
        os._exit(code)
    os.close(w)
    chunks = []
    end = time.monotonic() + timeout
    os.set_blocking(r, False)
    try:
        while True:
            try:
                b = os.read(r, 65536)
            except BlockingIOError:
                if time.monotonic() > end:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    raise AssertionError("%s as uid %d hung for %s s"
                                         % (getattr(fn, "__name__", fn),
                                            uid, timeout))
                time.sleep(0.01)
                continue
            if not b:
                break
            chunks.append(b)
    finally:
        os.close(r)
    _, status = os.waitpid(pid, 0)
    check(os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0,
          "child as uid %d failed (status %#x)" % (uid, status))
    import ast
    return ast.literal_eval(b"".join(chunks).decode())


def pids_with_arg(needle):
    """Pids of processes (not zombies) whose argv contains `needle` as a
    whole argument or inside one: daemonized smmapfs has no handle."""
    needle = os.fsencode(needle)
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit() or int(p) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % p, "rb") as f:
                argv = f.read().split(b"\0")
            with open("/proc/%s/stat" % p) as f:
                state = f.read().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if state != "Z" and any(needle in a for a in argv):
            out.append(int(p))
    return out


def thread_count(pid):
    return len(os.listdir("/proc/%d/task" % pid))


def children_of(pid):
    """Pids whose parent is pid (zombies included), with their state."""
    out = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        with contextlib.suppress(OSError):
            with open("/proc/%s/stat" % p) as f:
                fields = f.read().rpartition(")")[2].split()
            if int(fields[1]) == pid:
                out[int(p)] = fields[0]
    return out


def mount_entries(prefix):
    """Mount points at or beneath `prefix` (realpath), from mountinfo."""
    prefix = os.path.realpath(prefix)
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = _unescape_mountinfo(line.split()[4])
            if mp == prefix or mp.startswith(prefix + "/"):
                out.append(mp)
    return sorted(out)

__all__ = [n for n in dir() if not n.startswith("_")] + ["errno"]
