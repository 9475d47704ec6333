#!/usr/bin/env python3
"""fio verify through the mount, and a control that must fail.

Files carrying fio's verify headers (crc32c and md5, one header every 4 KiB:
verify_interval=4k) are laid down in SOURCE by fio write jobs run directly
on SOURCE (do_verify=0).  Read jobs then read them THROUGH THE MOUNT with
the same verify settings; fio checks every 4 KiB interval it reads (magic,
offset, length, checksum) and --verify_fatal=1 stops at the first mismatch.
(Not verify_only=1: it keeps the job's write direction, so fio opens the
files O_RDWR|O_CREAT, which the read-only mount refuses; --readonly rejects
such a job.  A read job with verify= set verifies every block it reads.)

For every job the test checks: exit 0, err=0 in the JSON, the bytes read,
and the bytes actually verified (counted from fio's --debug=verify lines,
"<type> verify io_u ..., len N"), which must equal every whole block of
every file; that the daemon really served those bytes (its read_bytes grew
by at least as much: fio drops the page cache first, invalidate=1); that
the daemon stays within its bounds and logs no "smmapfs:" line.

Matrix: engines psync, mmap, libaio (direct=1 and buffered), io_uring
(buffered and direct=1); sequential and random; block sizes 4K, 12K, 64K,
1M; mounts with window_size=256K (requests cross windows), the defaults,
whole files (window_size=0), and tight limits (evictions and fallbacks);
thousands of small files (fio nrfiles, filesize range), all open at once
and through openfiles=64.

Control: one byte in the data area (not the header) of one SOURCE file is
flipped; on a fresh mount (nothing cached) fio must report the corruption
(non-zero exit, err=EILSEQ, and the failing offset is the interval holding
the byte), with three engines.  Restoring the byte makes fio pass again.

Sizes: about 112 MiB in SOURCE (plain: 4 x 16 MiB crc32c, 16 MiB md5,
2000 small files of 4-32 KiB); about 70 MiB under the asan/tsan daemon
twins (SMMAP_TEST_VARIANT: 4 x 8 MiB, 8 MiB, 2000 files of 4-24 KiB).
"""
import json
import os
import re
import resource
import shutil
import time

from smmapfs_test import (Mount, Skip, check, check_eq, check_stats_bounds,
                          log, main, run, scratch, smmapfs_bin)

VARIANT = os.environ.get("SMMAP_TEST_VARIANT", "")
KiB, MiB = 1024, 1024 * 1024
INTERVAL = 4 * KiB              # verify_interval of every file
if VARIANT:
    CRC_FILES, CRC_SIZE = 4, 8 * MiB
    MD5_SIZE = 8 * MiB
    SMALL_FILES, SMALL_RANGE = 2000, "4k-24k"
else:
    CRC_FILES, CRC_SIZE = 4, 16 * MiB
    MD5_SIZE = 16 * MiB
    SMALL_FILES, SMALL_RANGE = 2000, "4k-32k"

# The file sets, as fio sees them: (name, verify, fio file-set options).
SETS = {
    "crc": ("crc32c", ["--filename_format=crc.$filenum",
                       "--nrfiles=%d" % CRC_FILES,
                       "--filesize=%d" % CRC_SIZE]),
    "md5": ("md5", ["--filename_format=md5.$filenum", "--nrfiles=1",
                    "--filesize=%d" % MD5_SIZE]),
    "small": ("md5", ["--filename_format=small.$filenum",
                      "--nrfiles=%d" % SMALL_FILES,
                      "--filesize=" + SMALL_RANGE]),
}

_state = {}   # the laid-down SOURCE, shared by the tests of this program


def need_fio():
    if shutil.which("fio") is None:
        raise Skip("fio is not installed")


def raise_nofile(want):
    """fio keeps every file of a job open: lift RLIMIT_NOFILE (inherited)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))  # root
    elif soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def set_files(src, name):
    """The files of a set in fio's order, with their sizes."""
    n = CRC_FILES if name == "crc" else 1 if name == "md5" else SMALL_FILES
    out = []
    for i in range(n):
        p = os.path.join(src, "%s.%d" % (name, i))
        out.append((p, os.stat(p).st_size))
    return out


def lay_down(src):
    """fio writes the sets into SOURCE directly (no mount involved)."""
    for name, (verify, opts) in SETS.items():
        run(["fio", "--name=lay-" + name, "--directory=" + src,
             "--rw=write", "--bs=" + ("4k" if name == "small" else "64k"),
             "--ioengine=psync",
             "--verify=" + verify, "--verify_interval=%d" % INTERVAL,
             "--do_verify=0", "--end_fsync=1", "--output-format=terse"]
            + opts)
    for name in SETS:
        files = set_files(src, name)
        check(all(s > 0 and s % INTERVAL == 0 for _, s in files),
              "%s: fio laid down odd sizes" % name)
        if name == "small":
            sizes = {s for _, s in files}
            check(len(sizes) > 3, "small files all of one size: %s" % sizes)
    total = sum(s for n in SETS for _, s in set_files(src, n))
    log("SOURCE: %d files, %.1f MiB" % (
        CRC_FILES + 1 + SMALL_FILES, total / MiB))


def source():
    """Lay the SOURCE down once per program (kept in a scratch dir)."""
    check(not _state.get("broken"), "laying down SOURCE failed before")
    if "src" not in _state:
        ctx = scratch("fio")
        d = ctx.__enter__()
        _state["ctx"] = ctx
        _state["dir"] = d
        src = os.path.join(d, "src")
        os.makedirs(src)
        try:
            lay_down(src)
        except Exception:
            _state["broken"] = True
            raise
        _state["src"] = src
    return _state["src"]


def parse_fio(out):
    """fio's stdout: --debug=verify lines, then the JSON document."""
    m = re.search(r"^\{", out, re.M)
    check(m is not None, "no JSON in fio output:\n" + out[-3000:])
    doc = json.loads(out[m.start():])
    verified = 0
    count = 0
    for v in re.finditer(r"^verify\s+\d+\s+(\w+) verify io_u \S+ len (\d+)",
                         out[:m.start()], re.M):
        verified += int(v.group(2))
        count += 1
    return doc, verified, count


def expected_bytes(files, bs):
    """fio reads every whole block of each file."""
    return sum(s // bs * bs for _, s in files)


def fio_read(m, name, setname, rw, bs, engine, extra=(), expect_ok=True,
             filename=None):
    """Run one verify-read job through the mount m; return (proc, doc...)."""
    verify, opts = SETS[setname]
    cmd = ["fio", "--name=" + name, "--rw=" + rw, "--bs=%d" % bs,
           "--ioengine=" + engine, "--verify=" + verify,
           "--verify_interval=%d" % INTERVAL, "--verify_fatal=1",
           "--invalidate=1", "--output-format=json", "--debug=verify"]
    if filename:
        cmd += ["--filename=" + filename]
    else:
        cmd += ["--directory=" + m.mnt] + opts
    cmd += list(extra)
    t0 = time.monotonic()
    p = run(cmd, check_rc=False)
    dt = time.monotonic() - t0
    if not expect_ok:
        return p, None, 0, dt
    check(p.returncode == 0, "fio %s failed (%d):\n%s\n%s"
          % (name, p.returncode, p.stderr[-3000:], p.stdout[-1500:]))
    doc, verified, _ = parse_fio(p.stdout)
    return p, doc, verified, dt


def daemon_clean(m):
    """Alive, and no "smmapfs:" line (errors) in the daemon's log."""
    check(m.alive(), "daemon died:\n" + m.log_text()[-3000:])
    bad = [ln for ln in m.log_text().splitlines()
           if "smmapfs:" in ln or "Sanitizer" in ln or "runtime error" in ln]
    check(not bad, "daemon logged:\n" + "\n".join(bad[:20]))


def run_job(m, limits, setname, rw, bs, engine, extra=()):
    """One checked job: verified every block, served by the daemon."""
    src = m.source
    files = set_files(src, setname)
    want = expected_bytes(files, bs)
    check(want > 0, "nothing to read")
    before = m.stats()
    name = "%s-%s-%s-%d" % (setname, engine, rw, bs)
    if any(e.startswith("--direct=1") for e in extra):
        name += "-direct"
    _, doc, verified, dt = fio_read(m, name, setname, rw, bs, engine, extra)
    job = doc["jobs"][0]
    check_eq(job["error"], 0, name + ": fio err")
    check_eq(job["read"]["io_bytes"], want, name + ": bytes read")
    check_eq(verified, want, name + ": bytes verified")
    after = m.stats()  # read_bytes is counted before each reply goes out
    served = after["read_bytes"] - before["read_bytes"]
    check(served >= want, "%s: daemon served %d bytes < %d read (cache?)"
          % (name, served, want))
    check_stats_bounds(after, **limits)
    check_eq(after["errors"], 0, name + ": daemon error replies")
    daemon_clean(m)
    log("  %-36s %7.1f MiB verified, %5.2f s, fallback_reads=%d "
        "evictions=%d" % (name, verified / MiB, dt, after["fallback_reads"],
                          after["evictions"]))
    return after


def mount_opts(limits, window):
    o = {} if window is None else {"window_size": window}
    for k, v in limits.items():
        o[k] = v
    return o


def run_matrix(tag, window, limits, jobs):
    need_fio()
    src = source()
    mnt = os.path.join(_state["dir"], "mnt-" + tag)
    opts = mount_opts(limits, window)
    # check_stats_bounds wants the limits in bytes/counts
    want = {}
    for k, v in limits.items():
        want[k] = parse_size(v)
    with Mount(src, mnt, opts) as m:
        st = m.stats()
        exp_window = 8 * MiB if window is None else parse_size(window)
        check_eq(st["window_size"], exp_window, "window_size")
        last = None
        for setname, rw, bs, engine, extra in jobs:
            last = run_job(m, want, setname, rw, bs, engine, extra)
        log("%s: peak_mapped_bytes=%d peak_mappings=%d peak_fds=%d "
            "hits=%d misses=%d evictions=%d fallback_reads=%d"
            % (tag, last["peak_mapped_bytes"], last["peak_mappings"],
               last["peak_fds"], last["hits"], last["misses"],
               last["evictions"], last["fallback_reads"]))
        return m, last


def parse_size(v):
    v = str(v)
    mult = {"K": KiB, "M": MiB, "G": 1024 * MiB}.get(v[-1:].upper(), 1)
    return int(v[:-1] if mult > 1 else v) * mult


DIRECT = "--direct=1"


def test_window_256k():
    """Small windows: every large request crosses windows."""
    jobs = [
        ("crc", "read", 4 * KiB, "psync", ()),
        ("crc", "randread", 12 * KiB, "psync", ()),
        ("crc", "randread", MiB, "psync", ()),
        ("crc", "read", 64 * KiB, "mmap", ()),
        ("md5", "randread", 4 * KiB, "mmap", ()),
        ("crc", "randread", 64 * KiB, "libaio", (DIRECT, "--iodepth=16")),
        ("md5", "read", MiB, "libaio", (DIRECT, "--iodepth=4")),
        ("md5", "randread", 12 * KiB, "libaio", ("--iodepth=8",)),
        ("crc", "randread", 4 * KiB, "io_uring", ("--iodepth=32",)),
        ("md5", "randread", 12 * KiB, "io_uring", (DIRECT, "--iodepth=16")),
        ("crc", "read", MiB, "io_uring", (DIRECT, "--iodepth=8")),
        ("small", "randread", 4 * KiB, "psync", ()),
        ("small", "read", 4 * KiB, "io_uring",
         ("--iodepth=8", "--openfiles=64", "--file_service_type=random")),
    ]
    _, st = run_matrix("w256k", "256K", {}, jobs)
    check(st["misses"] > 0 and st["hits"] > 0, "no windows used?")


def test_defaults():
    """The daemon's default options (8 MiB windows, no -o at all)."""
    jobs = [
        ("crc", "read", MiB, "psync", ()),
        ("crc", "randread", 64 * KiB, "libaio", (DIRECT, "--iodepth=16")),
        ("md5", "randread", 12 * KiB, "mmap", ()),
        ("md5", "randread", 4 * KiB, "io_uring", ("--iodepth=16",)),
        ("small", "randread", 4 * KiB, "psync", ()),
    ]
    run_matrix("defaults", None, {}, jobs)


def test_whole_files():
    """window_size=0: one mapping per file."""
    jobs = [
        ("crc", "randread", 64 * KiB, "psync", ()),
        ("md5", "read", MiB, "libaio", (DIRECT, "--iodepth=4")),
        ("small", "randread", 4 * KiB, "io_uring", ("--iodepth=8",)),
    ]
    run_matrix("whole", "0", {}, jobs)


def test_tight_limits():
    """Few windows, few bytes, two descriptors: evictions and fallbacks."""
    limits = {"max_handles": "16", "max_mapped": "2M", "max_fds": "2"}
    jobs = [
        ("crc", "randread", 64 * KiB, "psync", ()),
        ("crc", "read", MiB, "libaio", (DIRECT, "--iodepth=8")),
        ("md5", "randread", 12 * KiB, "io_uring", (DIRECT, "--iodepth=16")),
        ("md5", "read", 64 * KiB, "mmap", ()),
        ("small", "randread", 4 * KiB, "psync", ()),
    ]
    _, st = run_matrix("tight", "256K", limits, jobs)
    check(st["evictions"] > 0, "tight limits but no eviction: %r" % st)


def flip(path, off):
    with open(path, "r+b") as f:
        f.seek(off)
        b = f.read(1)
        f.seek(off)
        f.write(bytes([b[0] ^ 0x5A]))
        f.flush()
        os.fsync(f.fileno())
    return b


def test_control_corruption():
    """One flipped data byte in SOURCE: fio must report it, then pass."""
    need_fio()
    src = source()
    target = os.path.join(src, "crc.1")
    size = os.stat(target).st_size
    # The middle of the data area of an interval: headers (magic, length,
    # offset, seeds, crc32c) take the first few dozen bytes only.
    block = (size // 2 // INTERVAL) * INTERVAL + 3 * INTERVAL
    off = block + INTERVAL // 2 + 3
    controls = [
        ("read", 64 * KiB, "psync", ()),
        ("randread", 4 * KiB, "libaio", (DIRECT, "--iodepth=8")),
        ("read", MiB, "mmap", ()),
    ]
    orig = flip(target, off)
    try:
        for i, (rw, bs, engine, extra) in enumerate(controls):
            mnt = os.path.join(_state["dir"], "mnt-control-%d" % i)
            with Mount(src, mnt, {"window_size": "256K"}) as m:
                p, _, _, dt = fio_read(
                    m, "control-%s-%s" % (engine, rw), "crc", rw, bs, engine,
                    list(extra) + ["--size=%d" % size],
                    expect_ok=False, filename=m.path("crc.1"))
                out = p.stdout + p.stderr
                check(p.returncode != 0,
                      "fio missed the corruption (%s %s):\n%s"
                      % (engine, rw, out[-2000:]))
                doc, _, nver = parse_fio(p.stdout)
                err = doc["jobs"][0]["error"]
                check(err != 0, "fio JSON err=0 despite corruption")
                mm = re.search(r"verify failed at file (\S+) offset (\d+), "
                               r"length (\d+)", out)
                check(mm is not None, "no verify failure reported:\n"
                      + out[-2000:])
                check_eq(mm.group(1), m.path("crc.1"), "failing file")
                check_eq(int(mm.group(2)), block, "failing offset")
                check(nver > 0, "nothing verified before the failure")
                check_stats_bounds(m.stats())
                daemon_clean(m)
                log("  control %-8s %-8s: fio rc=%d err=%d, failure at "
                    "offset %s (byte flipped at %d), %d intervals verified "
                    "first, %.2f s" % (engine, rw, p.returncode, err,
                                       mm.group(2), off, nver, dt))
    finally:
        with open(target, "r+b") as f:
            f.seek(off)
            f.write(orig)
    # Restored: the same job passes again (the failure was that byte).
    mnt = os.path.join(_state["dir"], "mnt-control-restored")
    with Mount(src, mnt, {"window_size": "256K"}) as m:
        _, doc, verified, _ = fio_read(
            m, "control-restored", "crc", "read", 64 * KiB, "psync",
            ["--size=%d" % size], filename=m.path("crc.1"))
        check_eq(doc["jobs"][0]["error"], 0, "restored: fio err")
        check_eq(verified, size, "restored: bytes verified")
        daemon_clean(m)


def cleanup():
    """Last: remove the shared SOURCE."""
    if "ctx" in _state:
        _state.pop("ctx").__exit__(None, None, None)
        _state.clear()


if __name__ == "__main__":
    log("daemon: %s%s" % (smmapfs_bin(),
                          " (variant %s)" % VARIANT if VARIANT else ""))
    raise_nofile(SMALL_FILES + 1024)
    main([test_window_256k, test_defaults, test_whole_files,
          test_tight_limits, test_control_corruption, cleanup])
