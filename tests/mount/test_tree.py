#!/usr/bin/env python3
"""The standard generated tree through the mount, compared with standard tools.

make_tree() builds SOURCE once (plus extras/: names with newline, tab,
backslash, invalid UTF-8 and 255 bytes, a 600-entry directory, a 4095-byte
link target, many and large xattrs; and perm/ for the permission checks);
it is mounted several times at once:

  w64k      window_size=64K: files span many windows (make_tree's window)
  whole     window_size=0: whole files mapped (smmap's static policy)
  defaults  no options (8M windows, 4G, 4096 mappings, 16 descriptors)
  tight     64K windows with max_mapped=256K, max_handles=3, max_fds=2:
            every read evicts, large reads fall back to pread

and every check runs against each mount, comparing what a tool prints for
SOURCE with what it prints for the mount: cmp/cat, sha256sum, find -printf,
stat, readlink, getfattr, access(2), tar --xattrs, cp -a + diff -r, dd at
window boundaries (page cache and O_DIRECT), client mmap, ls -laR, names.
Then, on their own mounts: the sparse file at offsets beyond 2 GiB and
4 GiB (read by ranges, never fully), permissions as an unprivileged user
(allow_other, which implies default_permissions), and the FIFO.  Last, for
every mount: statistics within bounds, no "smmapfs:" line in the log, and
exit status 0 at unmount.

Before every tool run the mount's page cache of the files is dropped
(posix_fadvise DONTNEED), so each tool's reads reach the daemon.
"""
import contextlib
import ctypes
import ctypes.util
import errno
import hashlib
import mmap
import os
import pwd
import shutil
import stat
import subprocess
import threading
import time
import unicodedata

from smmapfs_test import (PAGE, STATS_XATTR, Mount, check, check_eq,
                          check_stats_bounds, diff_snapshots, errno_of, log,
                          main, make_tree, run, scratch, tree_snapshot,
                          write_file, pattern, AccessWatch)

VARIANT = os.environ.get("SMMAP_TEST_VARIANT", "")
KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
W = 64 * KiB                      # make_tree's window, the w64k windows
# The sparse file of the main tree is read whole by every tool on every
# mount: keep it small (three 8M windows of the defaults).  GiB offsets
# are tested on a tree of their own, by ranges.
SPARSE = (20 * MiB + 4321) if not VARIANT else (9 * MiB + 4321)
BIG = 5 * GiB                     # data at 2.5 GiB and just below 5 GiB
DEF_MAX_MAPPED = 4 * GiB          # the defaults, options.c (64-bit)

# name, mount options, expected bounds in the statistics
CONFIGS = [
    ("w64k", {"window_size": "64K"},
     dict(window_size=W, max_mapped=DEF_MAX_MAPPED, max_handles=4096,
          max_fds=16)),
    ("whole", {"window_size": "0"},
     dict(window_size=0, max_mapped=DEF_MAX_MAPPED, max_handles=4096,
          max_fds=16)),
    ("defaults", {},
     dict(window_size=8 * MiB, max_mapped=DEF_MAX_MAPPED, max_handles=4096,
          max_fds=16)),
    ("tight", {"window_size": "64K", "max_mapped": "256K",
               "max_handles": "3", "max_fds": "2"},
     dict(window_size=W, max_mapped=256 * KiB, max_handles=3, max_fds=2)),
]
LINKS = {"absolute": "/etc/hostname", "relative": "../one",
         "dangling": "does/not/exist", "dir-link": "../names"}
C_ENV = dict(os.environ, LC_ALL="C", TZ="UTC")


class Ctx:
    dir = None        # the program's scratch directory
    src = None        # SOURCE
    work = None       # outputs of tools (tar files, copies)
    mounts = {}       # name -> Mount
    bounds = {}       # name -> expected bounds
    setup_error = None


CTX = Ctx()


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

def sh(cmd, cwd=None, ok=True):
    """Run a tool in the C locale; return (rc, stdout bytes, stderr text)."""
    p = subprocess.run(cmd, cwd=cwd, env=C_ENV, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    err = p.stderr.decode(errors="replace")
    if ok and p.returncode != 0:
        raise AssertionError("command failed (%d): %s\n%s"
                             % (p.returncode, " ".join(map(str, cmd)),
                                err[-2000:]))
    return p.returncode, p.stdout, err


def check_bytes(got, want, what):
    """Equal bytes, or a short message: lengths and the first difference."""
    if got == want:
        return
    at = next((i for i, (x, y) in enumerate(zip(got, want)) if x != y),
              min(len(got), len(want)))
    raise AssertionError("%s: %d bytes, want %d; first difference at "
                         "offset %d" % (what, len(got), len(want), at))


def out(cmd, cwd=None):
    return sh(cmd, cwd)[1]


def same_output(cmd, m, what, transform=None):
    """Run cmd with cwd=SOURCE and cwd=MOUNT; the outputs must be equal."""
    a = out(cmd, CTX.src)
    drop_cache(m)
    b = out(cmd, m.mnt)
    if transform:
        a, b = transform(a), transform(b)
    check(a != b"" or b != b"", "%s: no output at all" % what)
    if a != b:
        al, bl = a.splitlines(), b.splitlines()
        diffs = [(x, y) for x, y in zip(al, bl) if x != y][:5]
        raise AssertionError("%s differs (SOURCE %d lines, mount %d lines);"
                             " first differences: %r"
                             % (what, len(al), len(bl), diffs))
    return a


def entries(root):
    """Relative paths of everything beneath root (not root), sorted."""
    res = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            res.append(os.path.relpath(os.path.join(dirpath, name), root))
    return sorted(res)


def regular_files(root):
    return [p for p in entries(root)
            if stat.S_ISREG(os.lstat(os.path.join(root, p)).st_mode)]


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def pread_path(path, size, off):
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.pread(fd, size, off)
    finally:
        os.close(fd)


def drop_file_cache(path):
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def drop_cache(m):
    """Drop the mount's page cache of every regular file (reads reach us)."""
    for rel in regular_files(CTX.src):
        drop_file_cache(m.path(rel))


def mount(name):
    if CTX.setup_error:
        raise AssertionError("setup failed: %s" % CTX.setup_error)
    m = CTX.mounts[name]
    check(m.alive(), "daemon of %s died:\n%s" % (name, m.log_text()[-3000:]))
    return m


def nobody_ids():
    """uid/gid of an unprivileged user: nobody, else smmapfs-test."""
    for user in ("nobody", "smmapfs-test"):
        try:
            pw = pwd.getpwnam(user)
            return pw.pw_uid, pw.pw_gid
        except KeyError:
            pass
    run(["useradd", "-M", "-r", "-s", "/usr/sbin/nologin", "smmapfs-test"])
    pw = pwd.getpwnam("smmapfs-test")
    return pw.pw_uid, pw.pw_gid


def as_user(uid, gid, cmd):
    """Run a tool as uid/gid without supplementary groups."""
    if shutil.which("setpriv"):
        pre = ["setpriv", "--reuid=%d" % uid, "--regid=%d" % gid,
               "--clear-groups"]
    else:
        pre = ["runuser", "-u", pwd.getpwuid(uid).pw_name, "--"]
    return sh(pre + cmd, ok=False)


# ---------------------------------------------------------------------------
# setup: SOURCE and the mounts
# ---------------------------------------------------------------------------

def add_extras(src, nobody):
    """Beyond the standard tree: odd names, a large directory, a long link
    target, and files for the permission checks."""
    x = os.path.join(src, "extras")
    os.makedirs(x)
    # Names are bytes: newline, tab, backslash, invalid UTF-8, 255 bytes.
    for name in (b"new\nline", b"tab\there", b"back\\slash",
                 b"\xff\xfe invalid utf-8", "ü".encode() * 127 + b"x",
                 b"*?[glob]", b" leading and trailing "):
        write_file(os.path.join(os.fsencode(x), name), name * 3)
    # Many attributes, and a large value.
    many = os.path.join(x, "many-xattrs")
    write_file(many, b"attributes\n")
    # (ext4 keeps all of a file's attributes in one 4 KiB block)
    for i in range(24):
        os.setxattr(many, "user.attr-%02d-%s" % (i, "k" * i),
                    pattern(i, 100 + i))
    os.setxattr(many, "user.large", pattern(1000, 99))
    # A long symlink target (PATH_MAX - 1 bytes: the most a link holds).
    os.symlink("t/" * 2047 + "t", os.path.join(x, "long-target"))
    # A directory listed in many readdir replies: symlinks (not regular
    # files, so the per-file loops stay short), names of every length.
    big = os.path.join(x, "bigdir")
    os.makedirs(big)
    for i in range(600):
        os.symlink("target-%d" % i,
                   os.path.join(big, "%04d-" % i + "n" * (i % 240)))
    uid, gid = nobody
    p = os.path.join(src, "perm")
    os.makedirs(p)
    write_file(os.path.join(p, "root-0600"), b"root 0600\n", mode=0o600)
    write_file(os.path.join(p, "root-0640"), b"root 0640\n", mode=0o640)
    write_file(os.path.join(p, "world-0644"), b"world 0644\n", mode=0o644)
    write_file(os.path.join(p, "nobody-0600"), b"nobody 0600\n", mode=0o600)
    os.chown(os.path.join(p, "nobody-0600"), uid, gid)
    os.makedirs(os.path.join(p, "dir-0700"))
    write_file(os.path.join(p, "dir-0700", "inner"), b"inner\n", mode=0o644)
    os.chmod(os.path.join(p, "dir-0700"), 0o700)


def test_setup():
    """make_tree() in SOURCE, then the four mounts."""
    try:
        os.chmod(CTX.dir, 0o755)  # an unprivileged user must reach mounts
        CTX.src = os.path.join(CTX.dir, "src")
        CTX.work = os.path.join(CTX.dir, "work")
        os.makedirs(CTX.work)
        notes = make_tree(CTX.src, window=W, big_sparse=SPARSE)
        check_eq(notes["window"], W, "make_tree window")
        add_extras(CTX.src, nobody_ids())
        for name, opts, bounds in CONFIGS:
            CTX.mounts[name] = Mount(CTX.src,
                                     os.path.join(CTX.dir, "mnt-" + name),
                                     opts)
            CTX.bounds[name] = bounds
        log("daemon: %s (variant: %s)" % (
            os.readlink("/proc/%d/exe" % CTX.mounts["w64k"].pid),
            VARIANT or "none"))
    except Exception as e:
        CTX.setup_error = repr(e)
        raise


# ---------------------------------------------------------------------------
# checks run on every mount
# ---------------------------------------------------------------------------

def check_cat_cmp(m):
    """cmp SOURCE/f MOUNT/f and cat MOUNT/f for every regular file."""
    files = regular_files(CTX.src)
    check(len(files) >= 20, "too few regular files: %r" % files)
    drop_cache(m)
    for rel in files:
        rc, _, err = sh(["cmp", os.path.join(CTX.src, rel), m.path(rel)],
                        ok=False)
        check(rc == 0, "cmp %s: rc %d: %s" % (rel, rc, err))
    drop_cache(m)
    for rel in files:
        want = read_file(os.path.join(CTX.src, rel))
        check_bytes(out(["cat", m.path(rel)]), want, "cat " + rel)


def check_sha256sum(m):
    """sha256sum of all files (find | sort | xargs): same output."""
    cmd = ["sh", "-c", "find . -type f -print0 | sort -z | "
           "xargs -0 sha256sum"]
    o = same_output(cmd, m, "sha256sum of all files")
    check(len(o.splitlines()) == len(regular_files(CTX.src)),
          "sha256sum did not cover every file")


def check_find_printf(m):
    """find -printf type, mode, size, links, owner, mtime, link target."""
    # NUL-terminated: one name has a newline.
    cmd = ["sh", "-c", "find . -printf '%P|%y|%m|%s|%n|%U|%G|%T@|%l\\0' "
           "| sort -z"]
    o = same_output(cmd, m, "find -printf")
    check_eq(o.count(b"\0"), len(entries(CTX.src)) + 1, "find entries")
    # The link targets are there, read by the daemon's readlink.
    for name, target in LINKS.items():
        check(("\0links/%s|l|777|%d|" % (name, len(target))).encode() in o
              and ("|" + target + "\0").encode() in o,
              "find -printf lacks links/%s -> %s" % (name, target))
    check(b"|t/t/t/" in o and ("|l|777|%d|" % (4095)).encode() in o,
          "find -printf lacks the long link target")


def check_stat(m):
    """stat(1) of every entry, and lstat fields compared in Python."""
    rels = entries(CTX.src)
    fmt = "%n|%F|%a|%s|%h|%u|%g|%b|%B|%Y|%y|%Z|%z|%t|%T|%N"
    same_output(["stat", "-c", fmt, "."] + rels, m, "stat -c")
    ino_of = {}
    for rel in ["."] + rels:
        a = os.lstat(os.path.join(CTX.src, rel))
        b = os.lstat(m.path(rel))
        for f in ("st_mode", "st_size", "st_nlink", "st_uid", "st_gid",
                  "st_mtime_ns", "st_ctime_ns", "st_blocks", "st_rdev"):
            check_eq(getattr(b, f), getattr(a, f), "%s %s" % (rel, f))
        ino_of[rel] = b.st_ino
    # Hard links are one inode in the mount too; other files are not.
    check_eq(ino_of["links/hard-page"], ino_of["page"], "hard-page inode")
    check_eq(ino_of["names/hard many"], ino_of["many-windows"],
             "hard many inode")
    check_eq(len(set(ino_of.values())), len(ino_of) - 2,
             "distinct files have distinct inode numbers")
    # stat following a relative link lands on the mount's own inode.
    check_eq(os.stat(m.path("links/relative")).st_ino, ino_of["one"],
             "links/relative -> one")
    check_eq(os.stat(m.path("links/dir-link")).st_ino, ino_of["names"],
             "links/dir-link -> names")
    check_eq(os.statvfs(m.mnt).f_flag & os.ST_RDONLY, os.ST_RDONLY,
             "statvfs ST_RDONLY")


def check_readlink(m):
    """readlink of each link; the kernel, not the daemon, follows them."""
    for name, target in LINKS.items():
        rel = "links/" + name
        check_eq(os.readlink(os.path.join(CTX.src, rel)), target,
                 "SOURCE " + rel)
        got = out(["readlink", m.path(rel)]).decode()
        check_eq(got, target + "\n", "readlink " + rel)
        st = os.lstat(m.path(rel))
        check(stat.S_ISLNK(st.st_mode), rel + " is not a symlink")
        check_eq(st.st_size, len(target.encode()), rel + " size")
    # The daemon only answers readlink with the target text: an absolute
    # target is then resolved by the client's kernel from the client's
    # root, so links/absolute reaches the HOST's /etc/hostname (its dev
    # and inode, not the mount's): the daemon itself never follows a link
    # and never opens anything outside SOURCE.
    mdev = os.stat(m.mnt).st_dev
    if os.path.exists("/etc/hostname"):
        host = os.stat("/etc/hostname")
        st = os.stat(m.path("links/absolute"))
        check_eq((st.st_dev, st.st_ino), (host.st_dev, host.st_ino),
                 "links/absolute resolves to the host's /etc/hostname")
        check(st.st_dev != mdev, "absolute link resolved inside the mount")
        check_bytes(out(["cat", m.path("links/absolute")]),
                    read_file("/etc/hostname"), "cat links/absolute")
    else:
        check_eq(errno_of(os.stat, m.path("links/absolute")), errno.ENOENT,
                 "links/absolute without a host /etc/hostname")
    # A relative link is resolved by the kernel within the mount.
    check_eq(out(["cat", m.path("links/relative")]), b"x",
             "cat links/relative")
    check_eq(os.stat(m.path("links/relative")).st_dev, mdev,
             "links/relative stays in the mount")
    check_eq(sorted(os.listdir(m.path("links/dir-link"))),
             sorted(os.listdir(os.path.join(CTX.src, "names"))),
             "listing through links/dir-link")
    check_eq(errno_of(open, m.path("links/dangling"), "rb"), errno.ENOENT,
             "open links/dangling")
    # readlink of something that is no link: EINVAL, as on SOURCE.
    check_eq(errno_of(os.readlink, m.path("one")), errno.EINVAL,
             "readlink of a regular file")


def check_xattrs(m):
    """getfattr -d of the whole tree; explicit values; ENODATA."""
    same_output(["getfattr", "-R", "-h", "-d", "-m", "-", "-e", "hex",
                 "."], m, "getfattr -R -h -d -m -")
    same_output(["getfattr", "-d", "page", "one", "names", "links/hard-page",
                 "extras/many-xattrs"], m, "getfattr -d")
    for rel, key, val in (("page", "user.color", b"blue"),
                          ("links/hard-page", "user.color", b"blue"),
                          ("one", "user.empty", b""),
                          ("names", "user.kind", b"directory attribute")):
        check_eq(os.getxattr(m.path(rel), key), val, "%s %s" % (rel, key))
        check_eq(out(["getfattr", "--only-values", "-n", key,
                      m.path(rel)]), val, "getfattr -n %s %s" % (key, rel))
        check_eq(sorted(os.listxattr(m.path(rel))),
                 sorted(os.listxattr(os.path.join(CTX.src, rel))),
                 "listxattr " + rel)
    for rel in ("page", "names", "fifo", "empty", "secret"):
        check_eq(errno_of(os.getxattr, m.path(rel), "user.nope"),
                 errno.ENODATA, "missing attribute of " + rel)
    many = "extras/many-xattrs"
    check_eq(len(os.listxattr(m.path(many))), 25, "attributes of " + many)
    check_eq(os.getxattr(m.path(many), "user.large"), pattern(1000, 99),
             "large attribute")
    # Buffers too small: ERANGE, as from SOURCE.
    for rel, key in (("names", "user.kind"), (many, "user.large"),
                     (".", STATS_XATTR)):
        check_eq(c_getxattr_errno(m.path(rel), key, 3), errno.ERANGE,
                 "getxattr %s into 3 bytes" % key)
    check_eq(c_listxattr_errno(m.path(many), 10), errno.ERANGE,
             "listxattr into 10 bytes")
    check_eq(c_listxattr_errno(os.path.join(CTX.src, many), 10),
             errno.ERANGE, "SOURCE listxattr into 10 bytes")
    # A link's own attributes (none: user.* is not allowed on links).
    check_eq(os.listxattr(m.path("links/relative"), follow_symlinks=False),
             [], "listxattr of a symlink")
    # The statistics attribute is on the root only, and is not listed.
    check(STATS_XATTR not in os.listxattr(m.mnt), "stats listed")
    check_eq(os.listxattr(m.mnt), os.listxattr(CTX.src), "root listxattr")
    check_eq(errno_of(os.getxattr, m.path("names"), STATS_XATTR),
             errno.ENODATA, "stats attribute off the root")
    check(b"read_bytes=" in out(["getfattr", "--only-values", "-n",
                                 STATS_XATTR, m.mnt]), "stats via getfattr")


LIBC = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def c_getxattr_errno(path, key, size):
    buf = ctypes.create_string_buffer(max(size, 1))
    n = LIBC.getxattr(os.fsencode(path), key.encode(), buf,
                      ctypes.c_size_t(size))
    return ctypes.get_errno() if n < 0 else None


def c_listxattr_errno(path, size):
    buf = ctypes.create_string_buffer(max(size, 1))
    n = LIBC.listxattr(os.fsencode(path), buf, ctypes.c_size_t(size))
    return ctypes.get_errno() if n < 0 else None


def check_access(m):
    """access(2) R_OK/X_OK as root answers as on SOURCE; W_OK is EROFS."""
    for rel in ["."] + entries(CTX.src):
        for mode in (os.R_OK, os.X_OK, os.F_OK):
            check_eq(os.access(m.path(rel), mode),
                     os.access(os.path.join(CTX.src, rel), mode),
                     "access(%s, %d)" % (rel, mode))
        # access() follows links: links/absolute is the host's file.
        if not (rel.startswith("links/") and rel != "links/hard-page"):
            check(not os.access(m.path(rel), os.W_OK),
                  "W_OK granted: " + rel)


def tar_listing(path):
    o = out(["tar", "--xattrs", "--xattrs-include=*", "--numeric-owner",
             "--full-time", "-tvf", path]).decode()
    return sorted(o.splitlines())


def check_tar(m):
    """tar -c --xattrs of SOURCE and of the mount: listings, contents."""
    w = os.path.join(CTX.work, "tar-" + os.path.basename(m.mnt))
    os.makedirs(w)
    try:
        archives = {}
        for tag, root in (("src", CTX.src), ("mnt", m.mnt)):
            a = os.path.join(w, tag + ".tar")
            if tag == "mnt":
                drop_cache(m)
            rc, _, err = sh(["tar", "--xattrs", "--xattrs-include=*", "-cf",
                             a, "-C", root, "."], ok=False)
            check_eq((rc, err), (0, ""), "tar -c of " + tag)
            archives[tag] = a
        ls_src, ls_mnt = (tar_listing(archives[t]) for t in ("src", "mnt"))
        check_eq(len(ls_mnt), len(ls_src), "tar member count")
        check(ls_src == ls_mnt, "tar -tv listings differ: %r" %
              [(x, y) for x, y in zip(ls_src, ls_mnt) if x != y][:5])
        check(any(" link to " in ln for ln in ls_mnt), "no hard link")
        check(any(ln.startswith("p") for ln in ls_mnt), "no FIFO member")
        dirs = {}
        for tag in ("src", "mnt"):
            d = os.path.join(w, "x-" + tag)
            os.makedirs(d)
            sh(["tar", "--xattrs", "--xattrs-include=*", "-xpf",
                archives[tag], "-C", d])
            dirs[tag] = d
        # GNU diff reports any two FIFOs as different ("File a is a fifo
        # while file b is a fifo") and never reads them: leave the FIFO
        # out of diff -r and compare it with the snapshots below.
        rc, o, err = sh(["diff", "-r", "--no-dereference", "-x", "fifo",
                         dirs["src"], dirs["mnt"]], ok=False)
        check_eq(rc, 0, "diff -r of the extracted archives: %s %s"
                 % (o[:2000], err))
        d = diff_snapshots(copy_snapshot(dirs["src"]),
                           copy_snapshot(dirs["mnt"]))
        check(not d, "extracted archives differ: %s" % d[:10])
    finally:
        shutil.rmtree(w, ignore_errors=True)


def copy_snapshot(root):
    """tree_snapshot() for a copy: a directory's st_size depends on how
    its entries were created (ext4 grows directories in blocks, an htree
    when large), not on what it holds, so copies' directory sizes are left
    out.  The mount's own directory sizes are compared exactly elsewhere."""
    snap = tree_snapshot(root)
    for k, v in snap.items():
        if stat.S_ISDIR(int(v[0])):
            snap[k] = v[:2] + ("dir",) + v[3:]
    return snap


def check_cp_a(m):
    """cp -a of the mount, then diff -r against SOURCE (and snapshots)."""
    dest = os.path.join(CTX.work, "cp-" + os.path.basename(m.mnt))
    # "secret" (mode 000) and perm/*: we are root, so cp reads them through
    # the mount (no default_permissions here: the daemon, root too, opens
    # them) and diff reads both copies (CAP_DAC_OVERRIDE); an unprivileged
    # cp would fail on them (see test_permissions).
    try:
        drop_cache(m)
        rc, _, err = sh(["cp", "-a", m.mnt, dest], ok=False)
        check_eq((rc, err), (0, ""), "cp -a of the mount")
        # --no-dereference: links are compared as links (absolute and
        # dangling ones lead nowhere useful); the FIFO is left out because
        # diff calls any two FIFOs different without reading them (it must
        # not open them: that would block), it is checked below.
        rc, o, err = sh(["diff", "-r", "--no-dereference", "-x", "fifo",
                         CTX.src, dest], ok=False)
        check_eq(rc, 0, "diff -r SOURCE copy: %s %s" % (o[:2000], err))
        check(stat.S_ISFIFO(os.lstat(os.path.join(dest, "fifo")).st_mode),
              "the copy's fifo is no FIFO")
        # Everything else cp -a preserves: modes, owners, mtimes (links
        # and directories too), hard links, xattrs, contents.
        d = diff_snapshots(copy_snapshot(CTX.src), copy_snapshot(dest))
        check(not d, "cp -a copy differs from SOURCE: %s" % d[:10])
        check_eq(os.lstat(os.path.join(dest, "links/hard-page")).st_ino,
                 os.lstat(os.path.join(dest, "page")).st_ino,
                 "cp -a kept the hard link")
    finally:
        shutil.rmtree(dest, ignore_errors=True)


def dd(path, bs, skip, count=None, direct=False):
    flags = ["skip_bytes"]
    cmd = ["dd", "if=" + path, "bs=%d" % bs, "skip=%d" % skip,
           "status=none"]
    if count is not None:
        flags.append("count_bytes")
        cmd.append("count=%d" % count)
    if direct:
        flags.append("direct")
    cmd.append("iflag=" + ",".join(flags))
    rc, o, err = sh(cmd, ok=False)
    return rc, o, err


def check_dd(m):
    """dd at and around window boundaries, bs not dividing the window."""
    cases = []
    for rel in ("many-windows", "windows-7.5", "windows-4", "page+1",
                "page-1", "one", "names/hard many"):
        size = os.path.getsize(os.path.join(CTX.src, rel))
        # the hard link: same inode as many-windows, a few reads suffice
        nwin = (size + W - 1) // W if rel != "names/hard many" else 0
        cases += [(rel, 1000, 0, None), (rel, 4097, 0, None),
                  (rel, 65535, 0, None), (rel, 65537, 0, None),
                  (rel, 100000, 0, None), (rel, MiB, 0, None),
                  (rel, 3 * MiB, 0, None),
                  (rel, 7, max(size - 1, 0), 100),     # the last byte
                  (rel, 4096, size, None),             # at EOF
                  (rel, 512, size + 1000, 10),         # past EOF
                  (rel, 1000, size + 10 * MiB, None)]  # far past EOF
        for k in range(1, nwin + 1, 3 if nwin > 10 else 1):
            b = k * W
            cases += [(rel, 1, b - 1, 2), (rel, 1000, b - 1, 3000),
                      (rel, 4097, b - 4097, 2 * W + 10),
                      (rel, 65537, b + 1, W), (rel, W, b, W)]
    # The sparse file: its first data, the middle data, its end.
    half = SPARSE // 2
    cases += [("sparse", 4097, 3 * PAGE - 5, 3 * W),
              ("sparse", 65535, half - 10, W + 40),
              ("sparse", 100000, half + W - 7, 3 * W),
              ("sparse", 1000, SPARSE - 5003, 6000),
              ("sparse", 8192, SPARSE - 1, 5)]
    oracle = {}
    for direct in (False, True):
        for rel, bs, skip, count in cases:
            src = os.path.join(CTX.src, rel)
            if src not in oracle:
                oracle[src] = read_file(src)
            data = oracle[src]
            want = data[skip:skip + count] if count is not None \
                else data[skip:]
            rc_s, o_s, _ = dd(src, bs, skip, count)
            drop_file_cache(m.path(rel))
            rc_m, o_m, err = dd(m.path(rel), bs, skip, count, direct)
            what = "dd %s bs=%d skip=%d count=%s%s" % (
                rel, bs, skip, count, " direct" if direct else "")
            check_eq(rc_m, rc_s, what + " status (%s)" % err)
            check_bytes(o_s, want, what + " on SOURCE (the oracle)")
            check_bytes(o_m, want, what)


def check_mmap(m):
    """mmap(2) of files in the mount (through the page cache)."""
    for rel in ("many-windows", "windows-7.5", "windows-4", "page",
                "page+1", "page-1", "one", "sparse"):
        want = read_file(os.path.join(CTX.src, rel))
        size = len(want)
        fd = os.open(m.path(rel), os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            mm = mmap.mmap(fd, 0, flags=mmap.MAP_SHARED,
                           prot=mmap.PROT_READ)
            try:
                check_eq(len(mm), size, rel + " mapping length")
                # Fault page by page, from the end backwards, at the
                # window boundaries first.
                mm.madvise(mmap.MADV_RANDOM)
                for b in range((size // W) * W, 0, -W):
                    lo, hi = max(b - 3, 0), min(b + 3, size)
                    check(mm[lo:hi] == want[lo:hi],
                          "%s: mapped bytes at %d" % (rel, b))
                check(mm[size - 1:] == want[size - 1:], rel + " last byte")
                check(mm[:] == want, rel + ": mapped contents differ")
            finally:
                mm.close()
            if size >= 8 * W:
                # A mapping at an offset, of part of the file.
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                mm = mmap.mmap(fd, 3 * W, flags=mmap.MAP_SHARED,
                               prot=mmap.PROT_READ, offset=5 * W)
                try:
                    check(mm[:] == want[5 * W:8 * W], rel + " at 5 windows")
                finally:
                    mm.close()
            # MAP_PRIVATE writable: copy-on-write, the file is unchanged.
            if size:
                mm = mmap.mmap(fd, 0, flags=mmap.MAP_PRIVATE,
                               prot=mmap.PROT_READ | mmap.PROT_WRITE)
                try:
                    mm[0:1] = bytes([want[0] ^ 0xff])
                finally:
                    mm.close()
                check_eq(pread_path(m.path(rel), 1, 0), want[:1],
                         rel + " after a private write")
        finally:
            os.close(fd)


def check_empty(m):
    """Size-0 files read as empty, whatever the tool."""
    check_eq(os.path.getsize(m.path("empty")), 0, "empty size")
    check_eq(read_file(m.path("empty")), b"", "read empty")
    check_eq(out(["cat", m.path("empty")]), b"", "cat empty")
    check_eq(dd(m.path("empty"), 4096, 0)[:2], (0, b""), "dd empty")
    check_eq(dd(m.path("empty"), 4096, 0, direct=True)[:2], (0, b""),
             "dd direct empty")
    check_eq(pread_path(m.path("empty"), 100, 12345), b"", "pread empty")
    check_eq(out(["wc", "-c", m.path("empty")]).split()[0], b"0",
             "wc -c empty")
    # Python refuses to map an empty file (ValueError): nothing to check.


def check_ls_laR(m):
    """ls -laR of SOURCE and of the mount print the same."""
    def no_top_dotdot(o):
        # The top directory's ".." is SOURCE's and the mountpoint's parent
        # (both CTX.dir here): drop it, it is not part of the tree.
        lines = o.split(b"\n")
        end = lines.index(b"") if b"" in lines else len(lines)
        return b"\n".join(ln for i, ln in enumerate(lines)
                          if not (i < end and ln.endswith(b" ..")))
    o = same_output(["ls", "-laR", "--time-style=full-iso", "."], m,
                    "ls -laR", transform=no_top_dotdot)
    check(b"-> /etc/hostname" in o and b"prw-r--r--" in o and
          b"----------" in o, "ls -laR lacks links, FIFO or mode 000")


def check_names(m):
    """Names with spaces, UTF-8, leading dash, deep paths: by name."""
    srcn = os.path.join(CTX.src, "names")
    check_eq(sorted(os.listdir(os.fsencode(m.path("names")))),
             sorted(os.listdir(os.fsencode(srcn))), "names listing")
    for name in ("with space.txt", "ünïcödé ✓.txt", "-leading-dash",
                 "hard many"):
        want = read_file(os.path.join(srcn, name))
        check_bytes(read_file(m.path("names", name)), want, "read " + name)
        check_bytes(out(["cat", "--", name], cwd=m.path("names")), want,
                    "cat -- " + name)
        check_eq(os.stat(m.path("names", name)).st_size, len(want),
                 "stat " + name)
    # Names are bytes: another normalization or case is another name.
    nfd = unicodedata.normalize("NFD", "ünïcödé ✓.txt")
    check(nfd != "ünïcödé ✓.txt", "NFD equals NFC")
    for bad in (nfd, "With space.txt", "with%20space.txt", "with space"):
        check_eq(errno_of(os.stat, m.path("names", bad)), errno.ENOENT,
                 "stat names/" + bad)
    check_eq(errno_of(os.stat, m.path("one", "x")), errno.ENOTDIR,
             "one/x")
    check_eq(errno_of(os.stat, m.path("no-such")), errno.ENOENT, "no-such")
    deep = "/".join("d%d" % i for i in range(24))
    check_bytes(read_file(m.path(deep, "leaf")),
                read_file(os.path.join(CTX.src, deep, "leaf")), "deep leaf")
    check_eq(os.listdir(m.path(deep)), ["leaf"], "deep listing")


def check_snapshot(m):
    """tree_snapshot() of the mount equals SOURCE's."""
    drop_cache(m)
    d = diff_snapshots(tree_snapshot(CTX.src), tree_snapshot(m.mnt))
    check(not d, "mount differs from SOURCE: %s" % d[:10])


def check_final(m):
    """Statistics within bounds, a clean log, exit status 0 at unmount."""
    name = [n for n, x in CTX.mounts.items() if x is m][0]
    b = CTX.bounds[name]
    st = m.stats()
    check_stats_bounds(st, max_mapped=b["max_mapped"],
                       max_handles=b["max_handles"], max_fds=b["max_fds"])
    check_eq(st["window_size"], b["window_size"], "window_size")
    check(st["read_bytes"] > 0 and st["reads"] > 0, "no reads counted")
    check_eq(st["errors"], 0, "error replies logged")
    check_eq(st["client_opens"], 0, "client opens left")
    m.unmount()
    bad = [ln for ln in m.log_text().splitlines() if "smmapfs:" in ln]
    check(not bad, "daemon log has error lines: %s" % bad[:10])


PER_MOUNT = [check_cat_cmp, check_sha256sum, check_find_printf, check_stat,
             check_readlink, check_xattrs, check_access, check_tar,
             check_cp_a, check_dd, check_mmap, check_empty, check_ls_laR,
             check_names, check_snapshot]


# ---------------------------------------------------------------------------
# checks on mounts of their own
# ---------------------------------------------------------------------------

def fifo_reader(path, result):
    try:
        fd = os.open(path, os.O_RDONLY)  # blocks until a writer comes
        try:
            result["data"] = os.read(fd, 100)
        finally:
            os.close(fd)
    except OSError as e:
        result["errno"] = e.errno


def run_with_timeout(fn, timeout, what):
    res = {}

    def body():
        try:
            res["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - reported below
            res["error"] = e
    t = threading.Thread(target=body, daemon=True)
    t.start()
    t.join(timeout)
    check(not t.is_alive(), "%s hangs (> %ss)" % (what, timeout))
    if "error" in res:
        raise res["error"]
    return res.get("value")


def test_fifo():
    """The FIFO is a FIFO, served by the kernel; the daemon never opens it."""
    m = mount("w64k")
    src_fifo = os.path.join(CTX.src, "fifo")
    st = os.lstat(m.path("fifo"))
    check(stat.S_ISFIFO(st.st_mode), "fifo is not a FIFO")
    check_eq(stat.S_IMODE(st.st_mode),
             stat.S_IMODE(os.lstat(src_fifo).st_mode), "fifo mode")
    want = read_file(os.path.join(CTX.src, "many-windows"))
    opens0 = m.stats()["opens"]
    with AccessWatch([src_fifo]) as watch:
        # Non-blocking open for reading: immediate, reads EOF (no writer).
        def nb():
            fd = os.open(m.path("fifo"), os.O_RDONLY | os.O_NONBLOCK)
            try:
                return os.read(fd, 10)
            finally:
                os.close(fd)
        check_eq(run_with_timeout(nb, 10, "O_NONBLOCK open of the fifo"),
                 b"", "read of a writerless FIFO")
        # A client blocked opening the FIFO does not block the daemon.
        result = {}
        reader = threading.Thread(target=fifo_reader,
                                  args=(m.path("fifo"), result), daemon=True)
        reader.start()
        try:
            time.sleep(0.2)
            check(reader.is_alive(), "blocking open of the FIFO returned: %r"
                  % result)
            drop_file_cache(m.path("many-windows"))
            got = run_with_timeout(lambda: read_file(m.path("many-windows")),
                                   20, "a read while a FIFO open blocks")
            check_bytes(got, want, "read while a FIFO open blocks")
            # SOURCE's FIFO is another pipe: nobody reads it.
            check_eq(errno_of(os.open, src_fifo,
                              os.O_WRONLY | os.O_NONBLOCK),
                     errno.ENXIO, "SOURCE fifo has a reader")
            # The mount's FIFO is a pipe in the client's kernel: a writer
            # through the mount meets the reader (MS_RDONLY does not apply
            # to FIFOs).
            fd = os.open(m.path("fifo"), os.O_WRONLY | os.O_NONBLOCK)
            try:
                os.write(fd, b"through the kernel")
            finally:
                os.close(fd)
            reader.join(10)
        finally:
            if reader.is_alive():
                # Release the reader (else it keeps the mount busy and the
                # unmount at the end fails): a writer comes and goes.
                with contextlib.suppress(OSError):
                    os.close(os.open(m.path("fifo"),
                                     os.O_WRONLY | os.O_NONBLOCK))
                reader.join(10)
        check(not reader.is_alive(), "FIFO reader still blocked")
        check_eq(result.get("data"), b"through the kernel", "FIFO data")
        events = watch.events()
    check_eq(events, [], "SOURCE's FIFO was opened or read")
    # Only the one regular file was opened through the daemon (the drop
    # and the read: two opens); no FUSE open for the FIFO.
    check_eq(m.stats()["opens"] - opens0, 2, "daemon opens")
    check(m.alive(), "daemon died")


def test_permissions():
    """As an unprivileged user on an allow_other mount: EACCES where due."""
    if CTX.setup_error:
        raise AssertionError("setup failed: %s" % CTX.setup_error)
    uid, gid = nobody_ids()
    mnt = os.path.join(CTX.dir, "mnt-perm")
    with Mount(CTX.src, mnt, {"window_size": "64K",
                              "allow_other": None}) as m:
        # allow_other implies default_permissions: the kernel checks modes.
        with open("/proc/self/mountinfo") as f:
            line = [ln for ln in f if " %s " % mnt in ln]
        check(len(line) == 1 and "default_permissions" in line[0] and
              "allow_other" in line[0], "mount options: %r" % line)
        cases = {  # path: readable by the unprivileged user
            "secret": False, "perm/root-0600": False,
            "perm/root-0640": False, "perm/world-0644": True,
            "perm/nobody-0600": True, "perm/dir-0700/inner": False,
            "one": True, "many-windows": True, "names/with space.txt": True,
        }
        for rel, readable in cases.items():
            want = read_file(os.path.join(CTX.src, rel))
            for root, where in ((m.mnt, "mount"), (CTX.src, "SOURCE")):
                rc, o, err = as_user(uid, gid, ["cat", os.path.join(root,
                                                                    rel)])
                if readable:
                    check(rc == 0 and o == want, "%s %s as uid %d: rc %d %s"
                          % (where, rel, uid, rc, err))
                else:
                    check(rc != 0 and o == b"" and
                          "Permission denied" in err,
                          "%s %s as uid %d: rc %d out %r err %s"
                          % (where, rel, uid, rc, o[:50], err))
            # root bypasses the modes (CAP_DAC_OVERRIDE).
            check_bytes(read_file(m.path(rel)), want, "root reads " + rel)
        rc, o, err = as_user(uid, gid, ["ls", m.path("perm", "dir-0700")])
        check(rc != 0 and "Permission denied" in err,
              "ls of a 0700 directory: rc %d %s" % (rc, err))
        rc, o, err = as_user(uid, gid, ["ls", m.path("perm")])
        check(rc == 0 and b"world-0644" in o, "ls perm: rc %d %s" % (rc, err))
        rc, o, err = as_user(uid, gid, ["sha256sum", m.path("many-windows")])
        check(rc == 0 and o.split()[0].decode() == hashlib.sha256(
            read_file(os.path.join(CTX.src, "many-windows"))).hexdigest(),
            "sha256sum as uid %d: %s" % (uid, err))
        st = m.stats()
        check_stats_bounds(st)
        check_eq(st["errors"], 0, "error replies logged")
    bad = [ln for ln in m.log_text().splitlines() if "smmapfs:" in ln]
    check(not bad, "daemon log has error lines: %s" % bad[:10])
    # Without allow_other only the mounting user (root) gets in at all.
    m = mount("w64k")
    rc, o, err = as_user(uid, gid, ["stat", m.path("perm/world-0644")])
    check(rc != 0 and "Permission denied" in err,
          "uid %d on a mount without allow_other: rc %d %s" % (uid, rc, err))
    check_eq(read_file(m.path("secret")), b"root only\n",
             "root reads mode 000 without default_permissions")


def big_ranges():
    """(offset, length) pairs at and across 2 GiB, 4 GiB and the data."""
    half = BIG // 2
    return [(0, 3 * PAGE + 100), (3 * PAGE - 1, 2),
            (1 * GiB + 12345, 4096),
            (2 * GiB - 100, 200), (2 * GiB - W // 2, W),
            (2 * GiB, MiB),
            (half - 1000, W + 17 + 2000), (half + W - 3, 100),
            (half + 17 - 1, 2),
            (4 * GiB - 100, 200), (4 * GiB - 1, 2), (4 * GiB, MiB),
            (4 * GiB + 12345, W),
            (BIG - 5000 - 10, 5010), (BIG - 5000 - 4096, 3 * 4096),
            (BIG - 100, 1000), (BIG - 1, 1), (BIG, 10),
            (BIG + 4096, 10), (8 * GiB, 10)]


def big_oracle(off, length):
    """The bytes make_tree() wrote into the BIG sparse file."""
    buf = bytearray(max(0, min(off + length, BIG) - off))
    half = BIG // 2
    for start, data in ((0, pattern(PAGE * 3, 7)),
                        (half, pattern(W + 17, 8)),
                        (BIG - 5000, pattern(5000, 9))):
        lo, hi = max(off, start), min(off + len(buf), start + len(data))
        if lo < hi:
            buf[lo - off:hi - off] = data[lo - start:hi - start]
    return bytes(buf)


def test_sparse_big():
    """A 5 GiB sparse file: ranges beyond 2 GiB and 4 GiB, on 3 mounts."""
    with scratch("tree-big") as d:
        src = os.path.join(d, "src")
        make_tree(src, window=W, big_sparse=BIG)
        path = os.path.join(src, "sparse")
        sst = os.stat(path)
        check_eq(sst.st_size, BIG, "SOURCE size")
        check(sst.st_blocks * 512 < 64 * MiB, "SOURCE sparse file not sparse")
        for name, opts, bounds in CONFIGS[:3]:
            with Mount(src, os.path.join(d, "mnt-" + name), opts) as m:
                mp = m.path("sparse")
                mst = os.stat(mp)
                check_eq((mst.st_size, mst.st_blocks),
                         (sst.st_size, sst.st_blocks), name + " size/blocks")
                for off, length in big_ranges():
                    want = big_oracle(off, length)
                    check_bytes(pread_path(path, length, off), want,
                                "SOURCE vs the oracle at %d" % off)
                    for direct in (False, True):
                        flags = os.O_RDONLY | (os.O_DIRECT if direct else 0)
                        fd = os.open(mp, flags)
                        try:
                            os.posix_fadvise(fd, 0, 0,
                                             os.POSIX_FADV_DONTNEED)
                            got = os.pread(fd, length, off)
                        finally:
                            os.close(fd)
                        check_bytes(got, want, "%s: pread(off=%d, len=%d)%s"
                                    % (name, off, length,
                                       " O_DIRECT" if direct else ""))
                # sha256sum of ranges with dd, SOURCE vs mount.
                for off, length in ((2 * GiB - 3 * MiB, 6 * MiB),
                                    (BIG // 2 - MiB, 3 * MiB),
                                    (4 * GiB - MiB, 2 * MiB),
                                    (BIG - 4 * MiB, 4 * MiB)):
                    sums = []
                    for p in (path, mp):
                        o = out(["sh", "-c", "dd if=\"$1\" bs=1M skip=%d "
                                 "count=%d iflag=skip_bytes,count_bytes "
                                 "status=none | sha256sum" % (off, length),
                                 "sh", p])
                        sums.append(o.split()[0])
                    check_eq(sums[1], sums[0], "%s sha256 of [%d, +%d)"
                             % (name, off, length))
                    check_eq(sums[0].decode(), hashlib.sha256(
                        big_oracle(off, length)).hexdigest(),
                        "oracle sha256 of [%d, +%d)" % (off, length))
                st = m.stats()
                check_stats_bounds(st, max_mapped=bounds["max_mapped"],
                                   max_handles=bounds["max_handles"],
                                   max_fds=bounds["max_fds"])
                check_eq(st["errors"], 0, name + " error replies logged")
            bad = [ln for ln in m.log_text().splitlines()
                   if "smmapfs:" in ln]
            check(not bad, "%s: daemon log has error lines: %s"
                  % (name, bad[:10]))


# ---------------------------------------------------------------------------

def tests():
    ts = [test_setup]
    for fn in PER_MOUNT:
        for name, _, _ in CONFIGS:
            def t(fn=fn, name=name):
                fn(mount(name))
            t.__name__ = "%s[%s]" % (fn.__name__, name)
            ts.append(t)
    ts += [test_fifo, test_permissions, test_sparse_big]
    for name, _, _ in CONFIGS:
        def t(name=name):
            check_final(mount(name))
        t.__name__ = "final_stats_log_unmount[%s]" % name
        ts.append(t)
    return ts


if __name__ == "__main__":
    os.umask(0o022)
    with scratch("tree") as d:
        CTX.dir = d
        try:
            main(tests())
        finally:
            for mm_ in CTX.mounts.values():
                if not mm_.unmounted:
                    log("daemon log of %s:\n%s" % (mm_.mnt,
                                                   mm_.log_text()[-3000:]))
                    mm_.kill()
