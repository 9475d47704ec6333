#!/usr/bin/env python3
"""Mount like any filesystem: smoke test of the harness (more to come)."""
import os

from smmapfs_test import (Mount, check, check_eq, check_stats_bounds, main,
                          scratch, write_file, pattern)


def test_mount_read_unmount():
    with scratch("mounting") as d:
        src = os.path.join(d, "src")
        os.makedirs(src)
        data = pattern(300000, 1)
        write_file(os.path.join(src, "f"), data)
        with Mount(src, os.path.join(d, "mnt"),
                   {"window_size": "64K", "max_handles": 4}) as m:
            with open(m.path("f"), "rb") as f:
                check(f.read() == data, "content differs")
            st = m.stats()
            check_stats_bounds(st, max_handles=4)
            check_eq(st["window_size"], 65536, "window_size")


if __name__ == "__main__":
    main([test_mount_read_unmount])
