#!/usr/bin/env python3
"""Every kind of write through the mount fails, and SOURCE never changes.

The mount is read-only twice over: the kernel mounts it MS_RDONLY, so it
refuses modifying system calls itself (most never reach the daemon), and
the daemon answers EROFS to every modifying request that gets through (see
ops_rofs.c).  The first line is tested on the mount as it is; the second by
remounting it read-write (mount(2) MS_REMOUNT, which FUSE allows), after
which the same calls reach the daemon and must still fail with EROFS.

Every call asserts one exact errno.  EROFS, unless the kernel legitimately
answers something else first -- each such case says why.  Nothing is ever
written through links/absolute: it resolves to the host's /etc/hostname.

Before and after: tree_snapshot() of SOURCE (contents, modes, owners, sizes,
mtimes, link targets, xattrs) must be identical; the daemon must still be
alive and the mount must still mirror SOURCE exactly; its statistics within
bounds, no "smmapfs:" line in its log, exit status 0 at unmount.
"""
import contextlib
import ctypes
import ctypes.util
import errno
import mmap
import os
import pwd
import shutil
import socket
import stat
import subprocess

from smmapfs_test import (Mount, check, check_eq, check_stats_bounds, log,
                          diff_snapshots, errno_of, is_mounted, main,
                          make_tree, pattern, scratch, tree_snapshot,
                          write_file)

KiB, MiB = 1 << 10, 1 << 20
W = 64 * KiB
C_ENV = dict(os.environ, LC_ALL="C")
AT_FDCWD = -100
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE = 1, 2
MS_RDONLY, MS_REMOUNT = 1, 32
DEEP = "/".join("d%d" % i for i in range(24)) + "/leaf"

libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64,
                           ctypes.c_int64]
libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int,
                           ctypes.c_char_p, ctypes.c_uint]
libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                       ctypes.c_ulong, ctypes.c_char_p]
libc.access.argtypes = [ctypes.c_char_p, ctypes.c_int]


def c_call(fn, *args):
    """Call a libc function; raise OSError with its errno on -1."""
    if fn(*args) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


class Ctx:
    dir = None
    src = None
    mnt = None
    outside = None
    m = None
    before = None
    setup_error = None


CTX = Ctx()


def mp(*parts):
    """A path in the mount; the mount must be there (else writes would
    land in the bare mountpoint directory and prove nothing)."""
    if CTX.setup_error:
        raise AssertionError("setup failed: %s" % CTX.setup_error)
    check(is_mounted(CTX.mnt), "the mount is gone")
    check(CTX.m.alive(), "the daemon died:\n" + CTX.m.log_text()[-3000:])
    return os.path.join(CTX.mnt, *parts)


def sp(*parts):
    return os.path.join(CTX.src, *parts)


def expect(want, fn, *args, what=None, **kw):
    """fn(*args) must fail with errno `want`."""
    got = errno_of(fn, *args, **kw)
    name = what or "%s%r" % (getattr(fn, "__name__", fn), args)
    check(got == want, "%s: got %s, want %s" % (
        name, errno.errorcode.get(got, got) if got else "success",
        errno.errorcode[want]))


def absent(*rels):
    """Nothing was created: neither in the mount nor in SOURCE."""
    for rel in rels:
        check_eq(errno_of(os.lstat, mp(rel)), errno.ENOENT,
                 "created in the mount: " + rel)
        check_eq(errno_of(os.lstat, sp(rel)), errno.ENOENT,
                 "created in SOURCE: " + rel)


def open_close(path, flags, mode=0o644):
    os.close(os.open(path, flags, mode))


def tool_fails(cmd, cwd=None, msg="Read-only file system"):
    """A standard tool must fail and say why (C locale)."""
    p = subprocess.run(cmd, cwd=cwd, env=C_ENV, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True,
                       stdin=subprocess.DEVNULL, timeout=60)
    check(p.returncode != 0, "%s succeeded" % " ".join(cmd))
    check(msg in p.stderr, "%s: rc %d, stderr lacks %r: %s"
          % (" ".join(cmd), p.returncode, msg, p.stderr[-1000:]))
    return p


# ---------------------------------------------------------------------------
# setup
# ---------------------------------------------------------------------------

def test_setup():
    """The standard tree (plus a few names), its snapshot, the mount."""
    try:
        os.chmod(CTX.dir, 0o755)
        CTX.src = os.path.join(CTX.dir, "src")
        make_tree(CTX.src, window=W, big_sparse=8 * MiB + 123)
        os.makedirs(sp("emptydir"))
        os.symlink("newfile", sp("links", "dangling-simple"))
        write_file(sp("owned-by-nobody"), b"nobody's\n", mode=0o644)
        os.chown(sp("owned-by-nobody"), *nobody_ids())
        CTX.outside = os.path.join(CTX.dir, "outside")
        os.makedirs(CTX.outside)
        write_file(os.path.join(CTX.outside, "file"), pattern(5000, 77))
        os.makedirs(os.path.join(CTX.outside, "tree", "sub"))
        write_file(os.path.join(CTX.outside, "tree", "sub", "f"), b"f\n")
        subprocess.run(["tar", "-cf", os.path.join(CTX.outside, "a.tar"),
                        "-C", os.path.join(CTX.outside, "tree"), "."],
                       check=True)
        CTX.before = tree_snapshot(CTX.src)
        CTX.mnt = os.path.join(CTX.dir, "mnt")
        CTX.m = Mount(CTX.src, CTX.mnt, {"window_size": "64K"})
        log("daemon: %s" % os.readlink("/proc/%d/exe" % CTX.m.pid))
        check_eq(os.statvfs(CTX.mnt).f_flag & os.ST_RDONLY, os.ST_RDONLY,
                 "statvfs ST_RDONLY")
        with open("/proc/self/mountinfo") as f:
            line = [ln.split() for ln in f if " %s " % CTX.mnt in ln]
        check(len(line) == 1 and "ro" in line[0][5].split(","),
              "mount options lack ro: %r" % line)
    except Exception as e:
        CTX.setup_error = repr(e)
        raise


def nobody_ids():
    for user in ("nobody", "smmapfs-test"):
        try:
            pw = pwd.getpwnam(user)
            return pw.pw_uid, pw.pw_gid
        except KeyError:
            pass
    subprocess.run(["useradd", "-M", "-r", "-s", "/usr/sbin/nologin",
                    "smmapfs-test"], check=True)
    pw = pwd.getpwnam("smmapfs-test")
    return pw.pw_uid, pw.pw_gid


# ---------------------------------------------------------------------------
# the first line: the kernel (MS_RDONLY)
# ---------------------------------------------------------------------------

EXISTING = ["one", "page", "many-windows", "empty", "secret",
            "names/with space.txt", "names/ünïcödé ✓.txt", "links/hard-page",
            "sparse", DEEP]
NEW = ["newfile", "names/new file ✓", "d0/d1/new", "links/new"]


def test_open_for_writing():
    """open() with O_WRONLY/O_RDWR/O_TRUNC/O_APPEND/O_CREAT: EROFS."""
    for rel in EXISTING:
        p = mp(rel)
        for flags in (os.O_WRONLY, os.O_RDWR, os.O_RDONLY | os.O_TRUNC,
                      os.O_WRONLY | os.O_TRUNC, os.O_WRONLY | os.O_APPEND,
                      os.O_RDWR | os.O_APPEND, os.O_WRONLY | os.O_CREAT,
                      os.O_RDWR | os.O_CREAT | os.O_TRUNC,
                      os.O_WRONLY | os.O_DIRECT, os.O_RDWR | os.O_SYNC):
            expect(errno.EROFS, open_close, p, flags,
                   what="open(%s, %#o)" % (rel, flags))
        # O_EXCL fails on an existing name with EEXIST: the kernel reports
        # the name's existence before it would need write access (POSIX).
        expect(errno.EEXIST, open_close, p,
               os.O_WRONLY | os.O_CREAT | os.O_EXCL,
               what="open(%s, O_CREAT|O_EXCL)" % rel)
        # O_RDONLY|O_CREAT on an existing name creates nothing and grants
        # no write access: it is a plain read-only open and succeeds.
        fd = os.open(p, os.O_RDONLY | os.O_CREAT, 0o644)
        try:
            check_eq(os.pread(fd, 64, 0), src_bytes(rel, 64),
                     "read after O_RDONLY|O_CREAT of " + rel)
        finally:
            os.close(fd)
    for rel in NEW:
        p = mp(rel)
        for flags in (os.O_WRONLY | os.O_CREAT, os.O_RDONLY | os.O_CREAT,
                      os.O_RDWR | os.O_CREAT | os.O_EXCL,
                      os.O_WRONLY | os.O_CREAT | os.O_TRUNC):
            expect(errno.EROFS, open_close, p, flags,
                   what="open(new %s, %#o)" % (rel, flags))
        absent(rel)
    # O_TMPFILE: an unnamed file in a directory of the mount.
    for rel in (".", "names"):
        expect(errno.EROFS, open_close, mp(rel),
               os.O_TMPFILE | os.O_WRONLY, what="O_TMPFILE in " + rel)
    # Directories: opening one for writing is EISDIR (may_open() refuses
    # write access to any directory before it looks at the mount).
    for rel in (".", "names", "d0"):
        expect(errno.EISDIR, open_close, mp(rel), os.O_RDWR,
               what="open(dir %s, O_RDWR)" % rel)
        expect(errno.EISDIR, open_close, mp(rel), os.O_WRONLY,
               what="open(dir %s, O_WRONLY)" % rel)


def src_bytes(rel, n):
    with open(sp(rel), "rb") as f:
        return f.read(n)


def test_writes_on_readonly_fds():
    """write/ftruncate/fallocate/copy_file_range/mmap on O_RDONLY fds."""
    outside = os.path.join(CTX.outside, "file")
    for rel in ("one", "many-windows", "empty"):
        fd = os.open(mp(rel), os.O_RDONLY)
        try:
            # No descriptor of the mount can be open for writing (see
            # above), so a write(2) fails on the descriptor: EBADF.
            expect(errno.EBADF, os.write, fd, b"x", what="write " + rel)
            expect(errno.EBADF, os.pwrite, fd, b"x", 10,
                   what="pwrite " + rel)
            expect(errno.EBADF, os.writev, fd, [b"a", b"b"],
                   what="writev " + rel)
            # ftruncate on a descriptor not open for writing is EINVAL
            # (do_ftruncate() checks FMODE_WRITE, POSIX says EINVAL/EBADF).
            expect(errno.EINVAL, os.ftruncate, fd, 0,
                   what="ftruncate " + rel)
            # fallocate needs FMODE_WRITE: EBADF (vfs_fallocate()).
            expect(errno.EBADF, os.posix_fallocate, fd, 0, 4096,
                   what="posix_fallocate " + rel)
            expect(errno.EBADF, c_call, libc.fallocate, fd, 0, 0, 4096,
                   what="fallocate " + rel)
            expect(errno.EBADF, c_call, libc.fallocate, fd,
                   FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096,
                   what="fallocate PUNCH_HOLE " + rel)
            # copy_file_range/sendfile INTO the mount: the destination is
            # not open for writing, EBADF.
            ofd = os.open(outside, os.O_RDONLY)
            try:
                expect(errno.EBADF, os.copy_file_range, ofd, fd, 100,
                       what="copy_file_range into " + rel)
                expect(errno.EBADF, os.sendfile, fd, ofd, 0, 100,
                       what="sendfile into " + rel)
            finally:
                os.close(ofd)
            # ... and from one file of the mount into another.
            fd2 = os.open(mp("page"), os.O_RDONLY)
            try:
                expect(errno.EBADF, os.copy_file_range, fd2, fd, 100,
                       what="copy_file_range mount->mount " + rel)
            finally:
                os.close(fd2)
            # Metadata through the descriptor: the mount is read-only.
            expect(errno.EROFS, os.fchmod, fd, 0o600, what="fchmod " + rel)
            expect(errno.EROFS, os.fchown, fd, 0, 0, what="fchown " + rel)
            expect(errno.EROFS, os.utime, fd, (1, 1), what="futimens " + rel)
            expect(errno.EROFS, os.setxattr, fd, "user.new", b"v",
                   what="fsetxattr " + rel)
            expect(errno.EROFS, os.removexattr, fd, "user.color",
                   what="fremovexattr " + rel)
            if rel != "empty":
                # A shared writable mapping needs a descriptor open for
                # writing: EACCES (do_mmap()).
                expect(errno.EACCES, mmap.mmap, fd, 0,
                       flags=mmap.MAP_SHARED,
                       prot=mmap.PROT_READ | mmap.PROT_WRITE,
                       what="mmap MAP_SHARED PROT_WRITE " + rel)
                # A private one is copy-on-write: allowed, and the file
                # does not change.
                mm = mmap.mmap(fd, 0, flags=mmap.MAP_PRIVATE,
                               prot=mmap.PROT_READ | mmap.PROT_WRITE)
                try:
                    mm[:1] = b"\0"
                    mm.flush()
                finally:
                    mm.close()
                check_eq(os.pread(fd, 1, 0), src_bytes(rel, 1),
                         "after a private mapping was written: " + rel)
            # fsync of a file nobody wrote: nothing to do, success.
            os.fsync(fd)
            os.fdatasync(fd)
        finally:
            os.close(fd)
    # O_RDONLY|O_APPEND is a read-only open (O_APPEND only affects
    # writes): it succeeds, and writing on it is EBADF.
    fd = os.open(mp("one"), os.O_RDONLY | os.O_APPEND)
    try:
        check_eq(os.read(fd, 10), b"x", "read O_RDONLY|O_APPEND")
        expect(errno.EBADF, os.write, fd, b"y", what="write O_APPEND fd")
    finally:
        os.close(fd)


def test_truncate():
    """truncate(2) of files (EROFS) and of directories (EISDIR)."""
    for rel in EXISTING:
        expect(errno.EROFS, os.truncate, mp(rel), 0, what="truncate " + rel)
        expect(errno.EROFS, os.truncate, mp(rel), 12345,
               what="truncate grow " + rel)
    # vfs_truncate() refuses directories before it asks for write access.
    for rel in (".", "names"):
        expect(errno.EISDIR, os.truncate, mp(rel), 0,
               what="truncate dir " + rel)


def renameat2(old, new, flags):
    c_call(libc.renameat2, AT_FDCWD, os.fsencode(old), AT_FDCWD,
           os.fsencode(new), flags)


def test_namespace():
    """unlink, rmdir, mkdir, rename(2)/renameat2, link, symlink, mknod."""
    for rel in ("one", "page", "secret", "fifo", "links/relative",
                "links/dangling", "links/absolute", "names/with space.txt",
                DEEP, "nonexistent"):
        # do_unlinkat() asks for write access before looking the name up:
        # EROFS even for a name that does not exist.
        expect(errno.EROFS, os.unlink, mp(rel), what="unlink " + rel)
    for rel in ("emptydir", "names", "d0", "one", "nonexistent"):
        expect(errno.EROFS, os.rmdir, mp(rel), what="rmdir " + rel)
    for rel in ("newdir", "names/newdir", "d0/d1/d2/newdir"):
        expect(errno.EROFS, os.mkdir, mp(rel), what="mkdir " + rel)
        absent(rel)
    # An existing name: filename_create() reports EEXIST before EROFS.
    for rel in ("names", "one", "emptydir"):
        expect(errno.EEXIST, os.mkdir, mp(rel), what="mkdir existing " + rel)
    renames = [("one", "two"), ("one", "names/one"), ("page", "one"),
               ("names", "names2"), ("names", "d0/names"),
               ("emptydir", "names/emptydir"), ("emptydir", "d0"),
               ("links/relative", "links/renamed"), ("fifo", "fifo2"),
               ("nonexistent", "x")]
    for a, b in renames:
        # do_renameat2() asks for write access before any lookup.
        expect(errno.EROFS, os.rename, mp(a), mp(b),
               what="rename %s %s" % (a, b))
        expect(errno.EROFS, os.replace, mp(a), mp(b),
               what="replace %s %s" % (a, b))
    for a, b in (("one", "page"), ("names", "d0"), ("one", "names")):
        expect(errno.EROFS, renameat2, mp(a), mp(b), RENAME_EXCHANGE,
               what="renameat2 EXCHANGE %s %s" % (a, b))
    expect(errno.EROFS, renameat2, mp("one"), mp("two"), RENAME_NOREPLACE,
           what="renameat2 NOREPLACE")
    # Out of or into the mount: another mount, EXDEV comes first.
    out = os.path.join(CTX.outside, "x")
    expect(errno.EXDEV, os.rename, mp("one"), out, what="rename out")
    expect(errno.EXDEV, os.rename, os.path.join(CTX.outside, "file"),
           mp("file"), what="rename in")
    absent("two", "names/one", "names2", "d0/names", "links/renamed",
           "fifo2", "file")
    check(not os.path.exists(out), "renamed out of the mount")
    for a, b in (("one", "hard"), ("page", "names/hard"),
                 ("links/relative", "links/hard-link")):
        expect(errno.EROFS, os.link, mp(a), mp(b), what="link %s %s" % (a, b))
    expect(errno.EEXIST, os.link, mp("one"), mp("page"),
           what="link onto an existing name")
    # link(2) into the mount: do_linkat() prepares the new name (and asks
    # for write access to its mount, EROFS) before it compares the mounts
    # (EXDEV), unlike rename(2).
    expect(errno.EROFS, os.link, os.path.join(CTX.outside, "file"),
           mp("file"), what="link into the mount")
    # link(2) out of the mount: the new name's mount is writable, so the
    # cross-mount check answers: EXDEV.
    expect(errno.EXDEV, os.link, mp("one"), os.path.join(CTX.outside, "l"),
           what="link out of the mount")
    for target, rel in (("one", "sym"), ("/etc/passwd", "names/sym"),
                        ("x" * 200, "d0/sym")):
        expect(errno.EROFS, os.symlink, target, mp(rel),
               what="symlink " + rel)
    expect(errno.EEXIST, os.symlink, "one", mp("page"),
           what="symlink onto an existing name")
    expect(errno.EROFS, os.mkfifo, mp("newfifo"), what="mkfifo")
    expect(errno.EROFS, os.mknod, mp("newreg"), 0o644 | stat.S_IFREG,
           what="mknod S_IFREG")
    expect(errno.EROFS, os.mknod, mp("newchr"), 0o644 | stat.S_IFCHR,
           os.makedev(1, 3), what="mknod S_IFCHR")
    expect(errno.EROFS, os.mknod, mp("newblk"), 0o644 | stat.S_IFBLK,
           os.makedev(7, 0), what="mknod S_IFBLK")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        expect(errno.EROFS, s.bind, mp("newsock"), what="bind AF_UNIX")
    finally:
        s.close()
    absent("hard", "names/hard", "links/hard-link", "sym", "names/sym",
           "d0/sym", "newfifo", "newreg", "newchr", "newblk", "newsock")


def test_attributes():
    """chmod, chown, utime(s), setxattr, removexattr: EROFS."""
    for rel in ("one", "page", "secret", "names", "fifo", "empty", DEEP,
                "owned-by-nobody"):
        p = mp(rel)
        expect(errno.EROFS, os.chmod, p, 0o600, what="chmod " + rel)
        # Even a change to nothing: write access is asked for first.
        expect(errno.EROFS, os.chmod, p, stat.S_IMODE(os.lstat(p).st_mode),
               what="chmod same " + rel)
        expect(errno.EROFS, os.chown, p, 1, 1, what="chown " + rel)
        expect(errno.EROFS, os.chown, p, -1, -1, what="chown -1 -1 " + rel)
        expect(errno.EROFS, os.utime, p, None, what="utime now " + rel)
        expect(errno.EROFS, os.utime, p, (1, 2), what="utime " + rel)
        expect(errno.EROFS, os.utime, p, ns=(1, 2), what="utimensat " + rel)
        expect(errno.EROFS, os.setxattr, p, "user.new", b"v",
               what="setxattr " + rel)
        expect(errno.EROFS, os.setxattr, p, "trusted.new", b"v",
               what="setxattr trusted " + rel)
        expect(errno.EROFS, os.setxattr, p, "system.posix_acl_access",
               b"\x02\x00\x00\x00", what="setxattr ACL " + rel)
        expect(errno.EROFS, os.removexattr, p, "user.nonexistent",
               what="removexattr missing " + rel)
    for rel, key in (("page", "user.color"), ("names", "user.kind"),
                     ("one", "user.empty")):
        expect(errno.EROFS, os.setxattr, mp(rel), key, b"changed",
               what="setxattr replace %s %s" % (rel, key))
        expect(errno.EROFS, os.setxattr, mp(rel), key, b"x",
               os.XATTR_REPLACE, what="setxattr XATTR_REPLACE " + rel)
        expect(errno.EROFS, os.removexattr, mp(rel), key,
               what="removexattr %s %s" % (rel, key))
    # A link itself (not followed): lchown, lutimes, lsetxattr.
    for rel in ("links/relative", "links/absolute", "links/dangling"):
        p = mp(rel)
        expect(errno.EROFS, os.chown, p, 1, 1, follow_symlinks=False,
               what="lchown " + rel)
        expect(errno.EROFS, os.utime, p, (1, 2), follow_symlinks=False,
               what="lutimes " + rel)
        expect(errno.EROFS, os.setxattr, p, "user.new", b"v",
               follow_symlinks=False, what="lsetxattr " + rel)
        expect(errno.EROFS, os.removexattr, p, "user.new",
               follow_symlinks=False, what="lremovexattr " + rel)


def test_root_directory():
    """The mount's root itself: attributes, entries, xattrs, the stats."""
    r = mp()
    expect(errno.EROFS, os.chmod, r, 0o700, what="chmod root")
    expect(errno.EROFS, os.chown, r, 1, 1, what="chown root")
    expect(errno.EROFS, os.utime, r, None, what="utime root")
    expect(errno.EROFS, os.setxattr, r, "user.new", b"v",
           what="setxattr root")
    expect(errno.EROFS, os.setxattr, r, "user.smmapfs.stats", b"x",
           what="setxattr the statistics")
    expect(errno.EROFS, os.removexattr, r, "user.smmapfs.stats",
           what="removexattr the statistics")
    expect(errno.EROFS, open_close, os.path.join(r, "new"),
           os.O_WRONLY | os.O_CREAT, what="create in root")
    expect(errno.EROFS, os.mkdir, os.path.join(r, "new"), what="mkdir root")
    expect(errno.EISDIR, open_close, r, os.O_RDWR, what="open root O_RDWR")
    expect(errno.EISDIR, os.truncate, r, 0, what="truncate root")
    # rmdir of "." is EINVAL in any filesystem (do_rmdir(), before any
    # access check).
    expect(errno.EINVAL, os.rmdir, os.path.join(r, "."), what="rmdir root/.")
    # The mountpoint itself belongs to the parent filesystem, which is
    # writable: removing or renaming it is EBUSY (it is a mountpoint).
    expect(errno.EBUSY, os.rmdir, r, what="rmdir the mountpoint")
    expect(errno.EBUSY, os.rename, r, r + "-moved",
           what="rename the mountpoint")
    check(os.getxattr(r, "user.smmapfs.stats").startswith(b"mapped_bytes="),
          "statistics unreadable")
    check_eq(os.statvfs(r).f_flag & os.ST_RDONLY, os.ST_RDONLY,
             "statvfs ST_RDONLY")
    absent("new")


def test_through_symlinks():
    """Writes through links of the mount land on their targets: EROFS."""
    p = mp("links/relative")  # -> ../one
    for flags in (os.O_WRONLY, os.O_RDWR, os.O_RDONLY | os.O_TRUNC,
                  os.O_WRONLY | os.O_APPEND, os.O_WRONLY | os.O_CREAT):
        expect(errno.EROFS, open_close, p, flags,
               what="open(links/relative, %#o)" % flags)
    # O_CREAT|O_EXCL does not follow a final link: the link exists.
    expect(errno.EEXIST, open_close, p, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
           what="O_EXCL on a link")
    expect(errno.EROFS, os.truncate, p, 0, what="truncate via link")
    expect(errno.EROFS, os.chmod, p, 0o600, what="chmod via link")
    expect(errno.EROFS, os.chown, p, 1, 1, what="chown via link")
    expect(errno.EROFS, os.utime, p, (1, 2), what="utime via link")
    expect(errno.EROFS, os.setxattr, p, "user.new", b"v",
           what="setxattr via link")
    expect(errno.EROFS, os.removexattr, p, "user.empty",
           what="removexattr via link")
    # Through a link to a directory of the mount.
    d = mp("links/dir-link")  # -> ../names
    expect(errno.EROFS, os.mkdir, os.path.join(d, "new"),
           what="mkdir via dir link")
    expect(errno.EROFS, open_close, os.path.join(d, "new"),
           os.O_WRONLY | os.O_CREAT, what="create via dir link")
    expect(errno.EROFS, os.unlink, os.path.join(d, "with space.txt"),
           what="unlink via dir link")
    expect(errno.EROFS, os.rename, os.path.join(d, "with space.txt"),
           os.path.join(d, "renamed"), what="rename via dir link")
    expect(errno.EROFS, open_close, os.path.join(d, "-leading-dash"),
           os.O_WRONLY, what="open for writing via dir link")
    # A dangling link to a plain name: O_CREAT would create its target in
    # the mount (links/newfile).
    expect(errno.EROFS, open_close, mp("links/dangling-simple"),
           os.O_WRONLY | os.O_CREAT, what="create via dangling link")
    # A dangling link whose target's directory is missing: there is
    # nowhere to create the target, ENOENT whatever the mount.
    expect(errno.ENOENT, open_close, mp("links/dangling"),
           os.O_WRONLY | os.O_CREAT, what="create via links/dangling")
    absent("links/newfile", "names/new", "names/renamed")
    # links/absolute resolves to the host's /etc/hostname: never written.


def test_tools():
    """cp, rm, mv, tar -x, touch, ... into or in the mount fail."""
    o = CTX.outside
    f = os.path.join(o, "file")
    m = mp()
    cmds = [
        ["cp", f, m + "/newfile"], ["cp", f, m + "/one"],
        ["cp", f, m + "/names/"], ["cp", "-r", o + "/tree", m + "/"],
        ["cp", "-a", m + "/names", m + "/names-copy"],
        ["install", "-m", "644", f, m + "/installed"],
        ["rm", m + "/one"], ["rm", "-f", m + "/page"],
        ["rm", "-rf", m + "/names"], ["rm", "-d", m + "/emptydir"],
        ["rmdir", m + "/emptydir"],
        ["mv", m + "/one", m + "/two"], ["mv", m + "/page", m + "/names/"],
        ["mv", m + "/names", m + "/d0/"],
        ["mv", f, m + "/"],
        ["tar", "-xf", o + "/a.tar", "-C", m],
        ["tar", "-xf", o + "/a.tar", "-C", m + "/names"],
        ["touch", m + "/one"], ["touch", m + "/newfile"],
        ["touch", "-h", m + "/links/relative"], ["touch", m + "/names"],
        ["mkdir", m + "/newdir"], ["mkdir", "-p", m + "/d0/a/b"],
        ["mkfifo", m + "/newfifo"],
        ["ln", m + "/one", m + "/hard"], ["ln", "-s", "one", m + "/sym"],
        ["ln", "-sf", "page", m + "/links/relative"],
        ["chmod", "600", m + "/one"], ["chmod", "-R", "go-r", m + "/names"],
        ["chown", "1:1", m + "/one"], ["chgrp", "-h", "1",
                                       m + "/links/relative"],
        ["setfattr", "-n", "user.new", "-v", "v", m + "/one"],
        ["setfattr", "-x", "user.color", m + "/page"],
        ["truncate", "-s", "0", m + "/one"],
        ["truncate", "-s", "+1M", m + "/many-windows"],
        ["dd", "if=/dev/zero", "of=" + m + "/one", "bs=1", "count=1",
         "conv=notrunc", "status=none"],
        ["dd", "if=/dev/zero", "of=" + m + "/newfile", "count=1",
         "status=none"],
        ["sed", "-i", "s/x/y/", m + "/one"],
        ["shred", "-n", "1", m + "/page"],
        ["sh", "-c", "echo x > \"$1\"", "sh", m + "/one"],
        ["sh", "-c", "echo x >> \"$1\"", "sh", m + "/names/with space.txt"],
        ["sh", "-c", "echo x > \"$1\"", "sh", m + "/brand-new"],
    ]
    for cmd in cmds:
        tool_fails(cmd)
    # mv out of the mount copies, then cannot remove the original.
    dest = os.path.join(o, "moved")
    tool_fails(["mv", m + "/windows-4", dest])
    check(os.path.exists(mp("windows-4")), "mv removed the original")
    with contextlib.suppress(OSError):
        os.unlink(dest)
    check(os.path.exists(f), "mv into the mount removed its source")
    absent("newfile", "names/file", "tree", "names-copy", "installed", "two",
           "names/page", "d0/names", "file", "sub", "names/sub", "newdir",
           "d0/a", "newfifo", "hard", "sym", "brand-new")


def test_unprivileged_user():
    """An unprivileged client (allow_other mount) gets EROFS as well: the
    kernel checks the mount's writability before any permission."""
    uid, gid = nobody_ids()
    mnt2 = os.path.join(CTX.dir, "mnt-other")
    with Mount(CTX.src, mnt2, {"window_size": "64K",
                               "allow_other": None}) as m2:
        pre = ["setpriv", "--reuid=%d" % uid, "--regid=%d" % gid,
               "--clear-groups"] if shutil.which("setpriv") else \
            ["runuser", "-u", pwd.getpwuid(uid).pw_name, "--"]
        for cmd in (["touch", mnt2 + "/newfile"], ["rm", mnt2 + "/one"],
                    ["mkdir", mnt2 + "/newdir"],
                    ["chmod", "777", mnt2 + "/owned-by-nobody"],
                    ["touch", mnt2 + "/owned-by-nobody"],
                    ["sh", "-c", "echo x >> \"$1\"", "sh",
                     mnt2 + "/owned-by-nobody"],
                    ["cp", "/dev/null", mnt2 + "/names/new"]):
            tool_fails(pre + cmd)
        # and can still read what its mode allows.
        p = subprocess.run(pre + ["cat", mnt2 + "/owned-by-nobody"],
                           stdout=subprocess.PIPE, env=C_ENV)
        check_eq((p.returncode, p.stdout), (0, b"nobody's\n"),
                 "unprivileged read")
        check_stats_bounds(m2.stats())
    absent("newfile", "newdir", "names/new")


# ---------------------------------------------------------------------------
# the second line: the daemon, on a mount remounted read-write
# ---------------------------------------------------------------------------

def remount(flags):
    c_call(libc.mount, None, os.fsencode(CTX.mnt), None,
           MS_REMOUNT | flags, None)


def access_errno(path, mode):
    if libc.access(os.fsencode(path), mode) == 0:
        return None
    return ctypes.get_errno()


def test_daemon_answers_erofs():
    """Remounted rw, the kernel passes writes on: the daemon says EROFS."""
    mp()
    remount(0)
    try:
        check_eq(os.statvfs(CTX.mnt).f_flag & os.ST_RDONLY, 0,
                 "remounted read-write")
        for rel in ("one", "page", "many-windows", "empty", DEEP):
            p = mp(rel)
            # FUSE_OPEN with write access (or O_TRUNC): the daemon's open.
            for flags in (os.O_WRONLY, os.O_RDWR, os.O_RDONLY | os.O_TRUNC,
                          os.O_WRONLY | os.O_APPEND,
                          os.O_WRONLY | os.O_CREAT | os.O_TRUNC):
                expect(errno.EROFS, open_close, p, flags,
                       what="rw: open(%s, %#o)" % (rel, flags))
            # FUSE_SETATTR
            expect(errno.EROFS, os.truncate, p, 0, what="rw: truncate")
            expect(errno.EROFS, os.chmod, p, 0o600, what="rw: chmod")
            expect(errno.EROFS, os.chown, p, 1, 1, what="rw: chown")
            expect(errno.EROFS, os.utime, p, (1, 2), what="rw: utime")
            # FUSE_SETXATTR, FUSE_REMOVEXATTR
            expect(errno.EROFS, os.setxattr, p, "user.new", b"v",
                   what="rw: setxattr")
            expect(errno.EROFS, os.removexattr, p, "user.color",
                   what="rw: removexattr")
            # FUSE_ACCESS with W_OK
            check_eq(access_errno(p, os.W_OK), errno.EROFS,
                     "rw: access W_OK " + rel)
            # FUSE_UNLINK, FUSE_RENAME(2), FUSE_LINK
            expect(errno.EROFS, os.unlink, p, what="rw: unlink")
            expect(errno.EROFS, os.rename, p, mp("renamed"),
                   what="rw: rename")
            expect(errno.EROFS, renameat2, p, mp("page+1"), RENAME_EXCHANGE,
                   what="rw: renameat2 EXCHANGE")
            expect(errno.EROFS, os.link, p, mp("hard"), what="rw: link")
            fd = os.open(p, os.O_RDONLY)
            try:
                # FUSE_FSYNC: nothing written, nothing to sync.
                os.fsync(fd)
                expect(errno.EBADF, os.write, fd, b"x", what="rw: write")
            finally:
                os.close(fd)
        # FUSE_CREATE (or MKNOD), MKDIR, SYMLINK, RMDIR, MKNOD
        for rel in ("newfile", "names/new", "d0/d1/new"):
            expect(errno.EROFS, open_close, mp(rel),
                   os.O_WRONLY | os.O_CREAT, what="rw: create " + rel)
            expect(errno.EROFS, open_close, mp(rel),
                   os.O_RDWR | os.O_CREAT | os.O_EXCL,
                   what="rw: create excl " + rel)
            expect(errno.EROFS, os.mkdir, mp(rel), what="rw: mkdir " + rel)
            expect(errno.EROFS, os.symlink, "one", mp(rel),
                   what="rw: symlink " + rel)
            expect(errno.EROFS, os.mkfifo, mp(rel), what="rw: mkfifo " + rel)
            expect(errno.EROFS, os.mknod, mp(rel), 0o644 | stat.S_IFCHR,
                   os.makedev(1, 3), what="rw: mknod " + rel)
        for rel in ("emptydir", "names"):
            expect(errno.EROFS, os.rmdir, mp(rel), what="rw: rmdir " + rel)
            expect(errno.EROFS, os.rename, mp(rel), mp(rel + "-2"),
                   what="rw: rename dir " + rel)
            expect(errno.EROFS, os.chmod, mp(rel), 0o700,
                   what="rw: chmod dir " + rel)
            expect(errno.EROFS, os.setxattr, mp(rel), "user.new", b"v",
                   what="rw: setxattr dir " + rel)
            check_eq(access_errno(mp(rel), os.W_OK), errno.EROFS,
                     "rw: access W_OK dir " + rel)
        expect(errno.EROFS, os.setxattr, mp(), "user.smmapfs.stats", b"x",
               what="rw: setxattr the statistics")
        expect(errno.EROFS, os.chmod, mp(), 0o700, what="rw: chmod root")
        # Through a link, and standard tools.
        expect(errno.EROFS, open_close, mp("links/relative"), os.O_WRONLY,
               what="rw: open via link")
        expect(errno.EROFS, open_close, mp("links/dangling-simple"),
               os.O_WRONLY | os.O_CREAT, what="rw: create via link")
        m = mp()
        for cmd in (["cp", os.path.join(CTX.outside, "file"), m + "/one"],
                    ["cp", os.path.join(CTX.outside, "file"), m + "/new"],
                    ["touch", m + "/one"], ["touch", m + "/new"],
                    ["rm", "-f", m + "/one"], ["mv", m + "/one", m + "/x"],
                    ["tar", "-xf", os.path.join(CTX.outside, "a.tar"),
                     "-C", m]):
            tool_fails(cmd)
        absent("renamed", "hard", "newfile", "names/new", "d0/d1/new",
               "emptydir-2", "names-2", "new", "x", "sub", "links/newfile")
    finally:
        remount(MS_RDONLY)
    check_eq(os.statvfs(CTX.mnt).f_flag & os.ST_RDONLY, os.ST_RDONLY,
             "remounted read-only")
    expect(errno.EROFS, open_close, mp("one"), os.O_WRONLY,
           what="read-only again")


# ---------------------------------------------------------------------------
# afterwards
# ---------------------------------------------------------------------------

def test_source_unchanged_mount_intact():
    """SOURCE byte-for-byte unchanged; the mount still mirrors it."""
    after = tree_snapshot(CTX.src)
    d = diff_snapshots(CTX.before, after)
    check(not d, "SOURCE changed: %s" % d[:10])
    check_eq(sorted(os.listdir(CTX.src)), sorted(os.listdir(mp())),
             "root listing")
    for rel in ("one", "many-windows", "sparse", DEEP):
        fd = os.open(mp(rel), os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    d = diff_snapshots(CTX.before, tree_snapshot(mp()))
    check(not d, "the mount differs from SOURCE: %s" % d[:10])
    st = CTX.m.stats()
    check_stats_bounds(st, max_handles=4096, max_fds=16)
    check_eq(st["window_size"], W, "window_size")
    check_eq(st["errors"], 0, "error replies logged")
    check_eq(st["client_opens"], 0, "client opens left")
    check(st["read_bytes"] > 0, "no reads counted")
    CTX.m.unmount()
    bad = [ln for ln in CTX.m.log_text().splitlines() if "smmapfs:" in ln]
    check(not bad, "daemon log has error lines: %s" % bad[:10])
    d = diff_snapshots(CTX.before, tree_snapshot(CTX.src))
    check(not d, "SOURCE changed after unmount: %s" % d[:10])


TESTS = [test_setup, test_open_for_writing, test_writes_on_readonly_fds,
         test_truncate, test_namespace, test_attributes, test_root_directory,
         test_through_symlinks, test_tools, test_unprivileged_user,
         test_daemon_answers_erofs, test_source_unchanged_mount_intact]

if __name__ == "__main__":
    os.umask(0o022)
    with scratch("rofs") as d:
        CTX.dir = d
        try:
            main(TESTS)
        finally:
            if CTX.m is not None and not CTX.m.unmounted:
                CTX.m.kill()
