#!/usr/bin/env python3
"""Process life (issue "Reliability and security").

SIGTERM and SIGINT unmount cleanly (exit 0, nothing mounted) while clients
are reading and while a file is held open; kill -9 of the daemon gives
clients ENOTCONN and `fusermount3 -u -z` cleans up (the mountpoint is usable
again and a new mount works); a second mount on the same mountpoint fails
with one line and leaves the first working; the daemon keeps its threads
within max_threads and has no children or zombies; SIGUSR1 (and a stray
SIGPIPE) during heavy reads disturbs nothing.
"""
import errno
import os
import random
import signal
import subprocess
import threading
import time

from smmapfs_test import (STATS_KEYS, Mount, check, check_eq,
                          check_stats_bounds, children_of, is_mounted, log,
                          main, mount_entries, pattern, pids_with_arg, run,
                          scratch, smmapfs_bin, thread_count, variant_scale,
                          write_file)

# Errors a client may see while the daemon is going away, never EIO by
# accident of a live mount: the connection is gone (ENOTCONN, ECONNABORTED)
# or the name now resolves in the bare mountpoint directory (ENOENT).
TEARDOWN_ERRNOS = {errno.ENOTCONN, errno.ECONNABORTED, errno.ENOENT,
                   errno.ENODEV}
SLOW = variant_scale(1, 3)  # deadlines stretch under the sanitizers


def make_source(d, n=6, size=600000):
    src = os.path.join(d, "src")
    os.makedirs(src)
    files = {}
    for i in range(n):
        data = pattern(size + i * 40961, 700 + i)
        write_file(os.path.join(src, "f%d" % i), data)
        files["f%d" % i] = data
    return src, files


class Readers:
    """Threads reading random ranges of the files through the mount and
    checking every byte; counts outcomes.  Each read has a deadline."""

    def __init__(self, mnt, files, threads=4, direct=False,
                 allowed=frozenset()):
        self.mnt, self.files = mnt, files
        self.allowed = allowed
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.ok = 0
        self.bytes = 0
        self.errors = {}
        self.bad = []
        self.max_latency = 0.0
        self.busy = {}  # thread index -> start of the call in progress
        self.direct = direct
        self.threads = [threading.Thread(target=self.body, args=(i,),
                                         daemon=True)
                        for i in range(threads)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def body(self, idx):
        rnd = random.Random(idx)
        names = sorted(self.files)
        while not self.stop.is_set():
            name = rnd.choice(names)
            data = self.files[name]
            t0 = time.monotonic()
            self.busy[idx] = t0
            try:
                fd = os.open(os.path.join(self.mnt, name), os.O_RDONLY)
                try:
                    for _ in range(4):
                        off = rnd.randrange(0, len(data))
                        size = rnd.choice((4096, 65536, 300000, 1 << 20))
                        if self.direct:
                            os.posix_fadvise(fd, 0, 0,
                                             os.POSIX_FADV_DONTNEED)
                        got = os.pread(fd, size, off)
                        if got != data[off:off + size]:
                            with self.lock:
                                self.bad.append((name, off, size, len(got)))
                        else:
                            with self.lock:
                                self.ok += 1
                                self.bytes += len(got)
                finally:
                    os.close(fd)
            except OSError as e:
                with self.lock:
                    self.errors[e.errno] = self.errors.get(e.errno, 0) + 1
                if e.errno not in self.allowed:
                    with self.lock:
                        self.bad.append((name, "errno", e.errno))
                time.sleep(0.01)
            finally:
                dt = time.monotonic() - t0
                self.busy.pop(idx, None)
                with self.lock:
                    self.max_latency = max(self.max_latency, dt)

    def hung(self, limit):
        now = time.monotonic()
        return [i for i, t0 in list(self.busy.items()) if now - t0 > limit]

    def finish(self, timeout):
        self.stop.set()
        end = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.1, end - time.monotonic()))
        alive = [t for t in self.threads if t.is_alive()]
        check(not alive, "%d reader threads still blocked %s s after stop"
              % (len(alive), timeout))

    def summary(self):
        return ("%d reads ok (%d MiB), errors %s, max latency %.2f s"
                % (self.ok, self.bytes >> 20,
                   {errno.errorcode.get(k, k): v
                    for k, v in self.errors.items()}, self.max_latency))


def test_sigterm_sigint_while_reading():
    for sig in (signal.SIGTERM, signal.SIGINT):
        with scratch("life-sig") as d:
            src, files = make_source(d)
            m = Mount(src, os.path.join(d, "mnt"),
                      {"window_size": "64K", "max_handles": 8,
                       "max_fds": 2})
            held = None
            try:
                # A file held open (and read) across the signal.
                held = os.open(m.path("f1"), os.O_RDONLY)
                check(os.pread(held, 4096, 0) == files["f1"][:4096],
                      "held file content")
                r = Readers(m.mnt, files, threads=4,
                            allowed=TEARDOWN_ERRNOS).start()
                time.sleep(1.5 * SLOW)
                check(not r.bad, "bad reads before the signal: %s"
                      % r.bad[:5])
                check(r.ok > 0, "no read finished before the signal")
                before = r.ok
                os.kill(m.pid, sig)
                rc = m.wait_exit(30 * SLOW, "after %s" % sig.name)
                m.unmounted = True
                r.finish(15 * SLOW)
                log("%s: %s" % (sig.name, r.summary()))
                check_eq(rc, 0, "exit status after %s" % sig.name)
                check(not is_mounted(m.mnt), "still mounted after %s"
                      % sig.name)
                check(not r.bad, "bad reads around %s: %s"
                      % (sig.name, r.bad[:5]))
                check(r.ok >= before, "counter went back")
                e = None
                try:
                    os.pread(held, 4096, 500000)
                except OSError as ex:
                    e = ex.errno
                check(e in TEARDOWN_ERRNOS | {None},
                      "held descriptor after %s: errno %s" % (sig.name, e))
                check(not pids_with_arg(m.mnt), "daemon still running")
                check_eq(os.listdir(m.mnt), [], "bare mountpoint")
            finally:
                if held is not None:
                    os.close(held)
                if not m.unmounted:
                    m.kill()


def test_kill9_enotconn_then_lazy_unmount():
    with scratch("life-kill") as d:
        src, files = make_source(d)
        mnt = os.path.join(d, "mnt")
        m = Mount(src, mnt, {"window_size": "64K"})
        held = None
        try:
            check(open(m.path("f0"), "rb").read() == files["f0"], "f0")
            held = os.open(m.path("f2"), os.O_RDONLY)
            r = Readers(mnt, files, threads=2,
                        allowed=TEARDOWN_ERRNOS).start()
            time.sleep(0.5 * SLOW)
            os.kill(m.pid, signal.SIGKILL)
            rc = m.wait_exit(20, "after kill -9")
            m.unmounted = True
            check_eq(rc, -signal.SIGKILL, "daemon status after kill -9")
            r.finish(15 * SLOW)
            log("after kill -9: %s" % r.summary())
            check(not r.bad, "bad reads around kill -9: %s" % r.bad[:5])
            check(is_mounted(mnt), "a killed daemon's mount stays until "
                  "unmounted")
            # Past attr_timeout (1 s) even the root's attributes must be
            # asked for: every access now needs the dead daemon.
            time.sleep(1.5)
            for what, fn in (
                    ("stat", lambda: os.stat(mnt)),
                    ("listdir", lambda: os.listdir(mnt)),
                    ("open", lambda: os.open(os.path.join(mnt, "f0"),
                                             os.O_RDONLY)),
                    ("read held (uncached range)",
                     lambda: (os.posix_fadvise(held, 0, 0,
                                               os.POSIX_FADV_DONTNEED),
                              os.pread(held, 65536, 300000)))):
                try:
                    fn()
                    got = None
                except OSError as e:
                    got = e.errno
                check_eq(got, errno.ENOTCONN, "%s after kill -9" % what)
            p = run(["fusermount3", "-u", "-z", mnt], check_rc=False)
            check_eq(p.returncode, 0, "fusermount3 -u -z: " + p.stderr)
            check(not is_mounted(mnt), "still mounted after -u -z")
            check_eq(os.listdir(mnt), [], "mountpoint usable again")
            os.close(held)
            held = None
            with Mount(src, mnt, {"window_size": "64K"}) as m2:
                for name, data in files.items():
                    with open(m2.path(name), "rb") as f:
                        check(f.read() == data, "%s after remount" % name)
                check_stats_bounds(m2.stats())
        finally:
            if held is not None:
                os.close(held)
            if is_mounted(mnt):
                subprocess.run(["fusermount3", "-u", "-z", mnt])


def test_second_mount_refused_first_unharmed():
    with scratch("life-twice") as d:
        src, files = make_source(d, n=2)
        other = os.path.join(d, "other")
        os.makedirs(other)
        write_file(os.path.join(other, "x"), b"other source\n")
        mnt = os.path.join(d, "mnt")
        with Mount(src, mnt) as m:
            os.symlink(mnt, os.path.join(d, "mnt-link"))
            attempts = [
                ("daemon mode", [src, mnt], None),
                ("foreground", ["-f", src, mnt], None),
                ("trailing slash", [src, mnt + "/"], None),
                ("relative path", ["src", "./mnt"], d),
                ("through a symlink", [src, os.path.join(d, "mnt-link")],
                 None),
                ("another SOURCE", ["-o", "window_size=64K", other, mnt],
                 None),
            ]
            pids_before = set(pids_with_arg(d))
            for what, args, cwd in attempts:
                p = subprocess.run([smmapfs_bin()] + args, cwd=cwd,
                                   stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True,
                                   timeout=30)
                lines = p.stderr.strip().splitlines()
                check(p.returncode != 0, "%s: second mount exit 0" % what)
                check_eq(len(lines), 1, "%s: stderr lines %r"
                         % (what, p.stderr))
                check("already a mount point" in lines[0]
                      and os.path.realpath(mnt) in lines[0],
                      "%s: %s" % (what, lines[0]))
                check_eq(mount_entries(d), [os.path.realpath(mnt)],
                         "%s: mounts" % what)
                check_eq(set(pids_with_arg(d)), pids_before,
                         "%s: processes" % what)
                for name, data in files.items():
                    with open(m.path(name), "rb") as f:
                        check(f.read() == data, "%s: first mount broken"
                              % what)
                check(m.alive(), "%s: first daemon died" % what)


def test_threads_children_zombies():
    cases = [({"max_threads": 4}, [], 4), ({}, [], 10), ({}, ["-s"], 1)]
    for opts, args, workers in cases:
        with scratch("life-threads") as d:
            src, files = make_source(d, n=8, size=300000)
            o = dict(opts, window_size="64K", max_handles=16)
            with Mount(src, os.path.join(d, "mnt"), o, args=args) as m:
                base = thread_count(m.pid)
                r = Readers(m.mnt, files, threads=16, direct=True).start()
                peak = base
                end = time.monotonic() + 3 * SLOW
                while time.monotonic() < end:
                    peak = max(peak, thread_count(m.pid))
                    check_eq(children_of(m.pid), {}, "daemon children")
                    time.sleep(0.02)
                r.finish(15 * SLOW)
                check(not r.bad and not r.errors, "reads: %s %s"
                      % (r.bad[:5], r.errors))
                # main + SIGUSR1 thread + invalidation thread + workers
                # (+1: libfuse's loop may start a worker before retiring
                # one).
                bound = workers + 3 + (1 if workers > 1 else 0)
                log("%s %s: threads at start %d, peak %d (bound %d); %s"
                    % (args, opts, base, peak, bound, r.summary()))
                check(peak <= bound, "%d threads, bound %d" % (peak, bound))
                time.sleep(0.5)
                check_eq(children_of(m.pid), {}, "daemon children after")
    # Daemonized (no -f): after fusermount3 -u nothing stays behind.
    with scratch("life-daemon") as d:
        src, files = make_source(d, n=2)
        mnt = os.path.join(d, "mnt")
        os.makedirs(mnt)
        run([smmapfs_bin(), src, mnt], timeout=30)
        try:
            check(is_mounted(mnt), "daemon mode did not mount")
            pids = pids_with_arg(mnt)
            check_eq(len(pids), 1, "daemon processes %s" % pids)
            with open(os.path.join(mnt, "f0"), "rb") as f:
                check(f.read() == files["f0"], "daemon mode read")
            check_eq(children_of(pids[0]), {}, "daemon children")
        finally:
            run(["fusermount3", "-u", mnt], check_rc=False)
        end = time.monotonic() + 20
        while (pids_with_arg(mnt) or is_mounted(mnt)) and \
                time.monotonic() < end:
            time.sleep(0.05)
        check(not is_mounted(mnt), "daemon mode: still mounted")
        check(not pids_with_arg(mnt), "daemon mode: process stays")


def test_sigusr1_during_heavy_reads():
    with scratch("life-usr1") as d:
        src, files = make_source(d, n=6)
        with Mount(src, os.path.join(d, "mnt"),
                   {"window_size": "64K", "max_handles": 8,
                    "max_fds": 3}) as m:
            r = Readers(m.mnt, files, threads=4, direct=True).start()
            dd_fail = []
            dd_stop = threading.Event()

            def dd_loop():
                names = sorted(files)
                i = 0
                while not dd_stop.is_set():
                    name = names[i % len(names)]
                    i += 1
                    try:
                        p = subprocess.run(
                            ["dd", "if=" + m.path(name), "bs=128K",
                             "iflag=direct", "status=none"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            timeout=30 * SLOW)
                    except subprocess.TimeoutExpired:
                        dd_fail.append((name, "timeout"))
                        continue
                    if p.returncode != 0 or p.stdout != files[name]:
                        dd_fail.append((name, p.returncode,
                                        p.stderr[-200:]))
            t = threading.Thread(target=dd_loop, daemon=True)
            t.start()
            sent = 0
            end = time.monotonic() + 5 * SLOW
            while time.monotonic() < end:
                os.kill(m.pid, signal.SIGUSR1)
                sent += 1
                if sent % 50 == 0:
                    os.kill(m.pid, signal.SIGPIPE)  # ignored by libfuse
                check(not r.hung(10 * SLOW), "a read hangs")
                time.sleep(0.01)
            r.finish(15 * SLOW)
            dd_stop.set()
            t.join(60 * SLOW)
            check(not t.is_alive(), "dd loop hangs")
            log("SIGUSR1 x%d: %s" % (sent, r.summary()))
            check(m.alive(), "daemon died under SIGUSR1")
            check(not r.bad and not r.errors, "reads disturbed: %s %s"
                  % (r.bad[:5], r.errors))
            check(not dd_fail, "dd disturbed: %s" % dd_fail[:3])
            check(r.ok > 0, "no reads")
            # Every signal gives at most one well-formed line (pending
            # signals coalesce).
            end = time.monotonic() + 5
            lines = []
            while time.monotonic() < end:
                lines = [ln for ln in m.log_text().splitlines()
                         if "stats:" in ln]
                if lines:
                    time.sleep(0.3)
                    lines = [ln for ln in m.log_text().splitlines()
                             if "stats:" in ln]
                    break
                time.sleep(0.05)
            check(1 <= len(lines) <= sent, "%d stats lines for %d signals"
                  % (len(lines), sent))
            for ln in lines:
                for k in STATS_KEYS:
                    check(" %s=" % k in ln or ": %s=" % k in ln,
                          "malformed stats line: %r" % ln)
            others = [ln for ln in m.log_text().splitlines()
                      if "stats:" not in ln and ln.strip()]
            check(not others, "unexpected log lines: %s" % others[:5])
            log("%d stats lines for %d SIGUSR1" % (len(lines), sent))
            check_stats_bounds(m.stats())
            for name, data in files.items():
                with open(m.path(name), "rb") as f:
                    check(f.read() == data, "%s after the signals" % name)


if __name__ == "__main__":
    main([test_sigterm_sigint_while_reading,
          test_kill9_enotconn_then_lazy_unmount,
          test_second_mount_refused_first_unharmed,
          test_threads_children_zombies,
          test_sigusr1_during_heavy_reads])
