/*
 * guard.h - copies from mappings that survive a file truncated underneath.
 */
#ifndef SMMAP_GUARD_H
#define SMMAP_GUARD_H

#include <stddef.h>

/**
 * memcpy(dst, src, n) where src lies in a file mapping.  If the pages are
 * gone (SIGBUS: the file shrank), return -EIO instead of dying.  Requires
 * smmap_sigbus_install() to have run.  Hold no lock while calling this.
 * @return 0 or -EIO.
 */
int smmap__guarded_copy(void *dst, const void *src, size_t n);

#endif /* SMMAP_GUARD_H */
