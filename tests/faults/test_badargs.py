#!/usr/bin/env python3
"""Bad command lines (issue "Reliability and security").

A table of command lines that must be refused.  Each row must give exactly
ONE line on stderr containing the offending argument (or a clear reason),
nothing on stdout, a non-zero exit status, and leave nothing behind: no new
entry in /proc/self/mountinfo beneath the scratch directory, no smmapfs
process.  The daemon is run as a user would (no -f): a command line wrongly
accepted would daemonize, exit 0 and leave a mount, which the row reports
(and cleans up).

Decisions recorded here:
  * sizes take K, M, G, T (and k, m, g, t) suffixes only: "5KB", "1Q",
    " 5", "-5", "0x10" are refused;
  * "SOURCE unreadable": as root every directory is readable, so two rows:
    the daemon run as the unprivileged user `smmapfs-test` on a mode-000
    directory (EACCES), and, as root, a SOURCE path running through a
    regular file ("file/sub": ENOTDIR while resolving);
  * MOUNTPOINT errors found by libfuse's own parser (missing mountpoint)
    come as its one "fuse: bad mount point `X': ..." line;
  * "allow_other" with "allow_root" is contradictory (libfuse 2 refused it
    as "mutually exclusive"); it must be refused.
"""
import os
import subprocess
import time

from smmapfs_test import (Mount, check, log, main, mount_entries, pattern,
                          pids_with_arg, scratch, smmapfs_bin,
                          unprivileged_user, write_file)

# (name, argv (list, {placeholders} filled from the paths), expected
#  substrings of the one error line (all must occur), run as the
#  unprivileged user)
ROWS = [
    ("no arguments", [], ["missing SOURCE and MOUNTPOINT"]),
    ("only SOURCE", ["{src}"], ["missing MOUNTPOINT", "{src}"]),
    ("SOURCE missing", ["{nosuch}", "{mnt}"], ["{nosuch}", "does not exist"]),
    ("SOURCE empty string", ["", "{mnt}"], ["SOURCE ''", "does not exist"]),
    ("SOURCE a regular file", ["{file}", "{mnt}"],
     ["{file}", "not a directory"]),
    ("SOURCE a dangling symlink", ["{dangling}", "{mnt}"],
     ["{dangling}", "does not exist"]),
    ("SOURCE through a file (ENOTDIR)", ["{file}/sub", "{mnt}"],
     ["{file}/sub", "Not a directory"]),
    ("SOURCE unreadable (mode 000, unprivileged)", ["{locked}", "{umnt}"],
     ["{locked}", "Permission denied"], "user"),
    ("MOUNTPOINT missing", ["{src}", "{nosuch}"],
     ["{nosuch}", "No such file"]),
    ("MOUNTPOINT empty string", ["{src}", ""], ["mount point", "No such"]),
    ("MOUNTPOINT a dangling symlink", ["{src}", "{dangling}"],
     ["{dangling}", "No such file"]),
    ("MOUNTPOINT a regular file", ["{src}", "{file}"],
     ["{file}", "not a directory"]),
    ("MOUNTPOINT already mounted", ["{src}", "{mounted}"],
     ["{mounted}", "already a mount point"]),
    ("MOUNTPOINT already mounted (trailing /)", ["{src}", "{mounted}/"],
     ["{mounted}", "already a mount point"]),
    ("MOUNTPOINT inside SOURCE", ["{src}", "{src}/inside"],
     ["{src}/inside", "inside SOURCE"]),
    ("MOUNTPOINT equal to SOURCE", ["{src}", "{src}"],
     ["{src}", "inside SOURCE"]),
    ("size not a number", ["-o", "window_size=abc", "{src}", "{mnt}"],
     ["window_size", "'abc'"]),
    ("size bad suffix", ["-o", "window_size=1Q", "{src}", "{mnt}"],
     ["window_size", "'1Q'"]),
    ("size negative", ["-o", "window_size=-5", "{src}", "{mnt}"],
     ["window_size", "'-5'"]),
    ("size leading space", ["-o", "window_size= 5", "{src}", "{mnt}"],
     ["window_size", "' 5'"]),
    ("size suffix KB", ["-o", "window_size=5KB", "{src}", "{mnt}"],
     ["window_size", "'5KB'"]),
    ("size hex", ["-o", "max_mapped=0x10", "{src}", "{mnt}"],
     ["max_mapped", "'0x10'"]),
    ("size empty", ["-o", "window_size=", "{src}", "{mnt}"],
     ["window_size", "''"]),
    ("size overflow with suffix",
     ["-o", "window_size=99999999999G", "{src}", "{mnt}"],
     ["window_size", "'99999999999G'"]),
    ("size overflow 2^64",
     ["-o", "max_mapped=99999999999999999999", "{src}", "{mnt}"],
     ["max_mapped", "'99999999999999999999'"]),
    ("size overflow 2^64 with K",
     ["-o", "max_mapped=18014398509481984K", "{src}", "{mnt}"],
     ["max_mapped", "'18014398509481984K'"]),
    ("window_size over 1T", ["-o", "window_size=2T", "{src}", "{mnt}"],
     ["window_size", "'2T'"]),
    ("max_mapped below a page", ["-o", "max_mapped=100", "{src}", "{mnt}"],
     ["max_mapped", "one page", "100"]),
    ("max_mapped below a page (1K)",
     ["-o", "window_size=0,max_mapped=1K", "{src}", "{mnt}"],
     ["max_mapped", "one page", "1K"]),
    ("max_mapped below one window",
     ["-o", "window_size=1M,max_mapped=512K", "{src}", "{mnt}"],
     ["max_mapped", "512K", "window", "1M"]),
    ("max_mapped below the default window",
     ["-o", "max_mapped=1M", "{src}", "{mnt}"],
     ["max_mapped", "1M", "window"]),
    ("max_handles zero", ["-o", "max_handles=0", "{src}", "{mnt}"],
     ["max_handles", "'0'"]),
    ("max_handles over 2^32", ["-o", "max_handles=4294967296", "{src}",
                               "{mnt}"], ["max_handles", "'4294967296'"]),
    ("max_fds zero", ["-o", "max_fds=0", "{src}", "{mnt}"],
     ["max_fds", "'0'"]),
    ("max_fds not a number", ["-o", "max_fds=abc", "{src}", "{mnt}"],
     ["max_fds", "'abc'"]),
    ("max_fds fraction", ["-o", "max_fds=1.5", "{src}", "{mnt}"],
     ["max_fds", "'1.5'"]),
    ("max_fds negative", ["-o", "max_fds=-1", "{src}", "{mnt}"],
     ["max_fds", "'-1'"]),
    ("max_fds over 65536", ["-o", "max_fds=65537", "{src}", "{mnt}"],
     ["max_fds", "'65537'"]),
    ("max_fds without value", ["-o", "max_fds", "{src}", "{mnt}"],
     ["max_fds"]),
    ("read_ahead over 1G", ["-o", "read_ahead=2G", "{src}", "{mnt}"],
     ["read_ahead", "'2G'"]),
    ("max_background over 65535",
     ["-o", "max_background=70000", "{src}", "{mnt}"],
     ["max_background", "'70000'"]),
    ("attr_timeout negative", ["-o", "attr_timeout=-1", "{src}", "{mnt}"],
     ["attr_timeout", "'-1'"]),
    ("entry_timeout nan", ["-o", "entry_timeout=nan", "{src}", "{mnt}"],
     ["entry_timeout", "'nan'"]),
    ("entry_timeout not a number",
     ["-o", "entry_timeout=abc", "{src}", "{mnt}"],
     ["entry_timeout", "'abc'"]),
    ("negative_timeout infinite",
     ["-o", "negative_timeout=inf", "{src}", "{mnt}"],
     ["negative_timeout", "'inf'"]),
    ("attr_timeout empty", ["-o", "attr_timeout=", "{src}", "{mnt}"],
     ["attr_timeout", "''"]),
    ("-s with max_threads", ["-s", "-o", "max_threads=4", "{src}", "{mnt}"],
     ["-s", "max_threads"]),
    ("-s with clone_fd", ["-s", "-o", "clone_fd", "{src}", "{mnt}"],
     ["-s", "clone_fd"]),
    ("max_threads not a number", ["-o", "max_threads=abc", "{src}",
                                  "{mnt}"], ["max_threads=abc"]),
    ("allow_other with allow_root",
     ["-o", "allow_other,allow_root", "{src}", "{mnt}"],
     ["allow_other", "allow_root"]),
    ("unknown -o option", ["-o", "nosuchoption", "{src}", "{mnt}"],
     ["nosuchoption"]),
    ("unknown long flag", ["--nosuchflag", "{src}", "{mnt}"],
     ["--nosuchflag"]),
    ("unknown short flag", ["-x", "{src}", "{mnt}"], ["-x"]),
    ("-o without its argument", ["{src}", "{mnt}", "-o"], ["-o"]),
    ("third positional argument", ["{src}", "{mnt}", "extra"],
     ["unexpected argument", "'extra'"]),
]


def fill(x, paths):
    return x.format(**paths)


def cleanup_leftovers(d, keep_pids):
    """A wrongly accepted command line left a daemon: unmount, stop it."""
    for mp in mount_entries(d):
        if mp != os.path.realpath(os.path.join(d, "mounted")):
            subprocess.run(["fusermount3", "-u", "-z", mp],
                           stderr=subprocess.DEVNULL)
    for pid in pids_with_arg(d):
        if pid not in keep_pids:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass


def run_row(row, paths, d, before_mounts, keep_pids, user):
    name, argv, want = row[0], row[1], row[2]
    argv = [fill(a, paths) for a in argv]
    want = [fill(w, paths) for w in want]
    cmd = [smmapfs_bin()] + argv
    if len(row) > 3 and row[3] == "user":
        uid, gid = user
        cmd = ["setpriv", "--reuid=%d" % uid, "--regid=%d" % gid,
               "--clear-groups"] + cmd
    problems = []
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=30)
        rc, out, err = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        rc, out, err = "timeout", e.stdout or "", e.stderr or ""
        problems.append("did not exit within 30 s")
    lines = [ln for ln in (err or "").splitlines() if ln.strip()]
    if rc == 0:
        problems.append("exit status 0 (accepted)")
    if len(lines) != 1:
        problems.append("%d stderr lines, want 1: %r" % (len(lines), err))
    else:
        missing = [w for w in want if w not in lines[0]]
        if missing:
            problems.append("line %r lacks %r" % (lines[0], missing))
    if out:
        problems.append("stdout not empty: %r" % out)
    # Nothing mounted, nothing running (allow a daemonizing child to go).
    end = time.monotonic() + 3
    while True:
        after = mount_entries(d)
        extra = [p for p in pids_with_arg(d) if p not in keep_pids]
        if (after == before_mounts and not extra) or time.monotonic() > end:
            break
        time.sleep(0.1)
    if after != before_mounts:
        problems.append("mounts changed: %s -> %s" % (before_mounts, after))
    if extra:
        problems.append("smmapfs processes left: %s" % extra)
    if after != before_mounts or extra:
        cleanup_leftovers(d, keep_pids)
    return problems, (lines[0] if lines else "")


def test_bad_command_lines():
    user = unprivileged_user()
    with scratch("badargs") as d:
        os.chmod(d, 0o755)  # the unprivileged rows traverse it
        paths = {
            "src": os.path.join(d, "src"),
            "file": os.path.join(d, "file"),
            "dangling": os.path.join(d, "dangling"),
            "nosuch": os.path.join(d, "nosuch"),
            "mnt": os.path.join(d, "mnt"),
            "umnt": os.path.join(d, "umnt"),
            "mounted": os.path.join(d, "mounted"),
            "locked": os.path.join(d, "locked"),
        }
        os.makedirs(os.path.join(paths["src"], "inside"))
        write_file(os.path.join(paths["src"], "f"), pattern(10000, 1))
        write_file(paths["file"], b"a regular file\n")
        os.symlink(os.path.join(d, "no", "where"), paths["dangling"])
        os.makedirs(paths["mnt"])
        os.makedirs(paths["umnt"])
        os.chown(paths["umnt"], user[0], user[1])
        os.makedirs(paths["locked"], mode=0o000)
        os.chmod(paths["locked"], 0o000)
        check(len(ROWS) >= 25, "table has %d rows" % len(ROWS))
        with Mount(paths["src"], paths["mounted"]) as live:
            keep = {live.pid}
            before = mount_entries(d)
            check(before == [os.path.realpath(paths["mounted"])],
                  "unexpected mounts before: %s" % before)
            failures = []
            for row in ROWS:
                problems, line = run_row(row, paths, d, before, keep, user)
                if problems:
                    failures.append("%s: %s" % (row[0], "; ".join(problems)))
                    log("FAIL %-45s %s" % (row[0], "; ".join(problems)))
                else:
                    log("ok   %-45s %s" % (row[0], line))
            # The live mount was never disturbed.
            with open(live.path("f"), "rb") as f:
                check(f.read() == pattern(10000, 1), "live mount broken")
            check(live.alive(), "the live mount's daemon died")
        log("%d bad command lines tried, %d refused correctly"
            % (len(ROWS), len(ROWS) - len(failures)))
        check(not failures, "%d of %d rows failed:\n  %s"
              % (len(failures), len(ROWS), "\n  ".join(failures)))


if __name__ == "__main__":
    main([test_bad_command_lines])
