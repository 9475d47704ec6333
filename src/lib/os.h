/*
 * os.h - the thin OS layer: every system call the library makes on files
 * goes through this table, which is the seam for fault-injection tests.
 * Tests replace members (and restore them) while no other thread uses the
 * library; production code never changes it.
 */
#ifndef SMMAP_OS_H
#define SMMAP_OS_H

#include <sys/stat.h>
#include <sys/types.h>

struct smmap__os {
	int (*open)(const char *path, int flags);
	int (*close)(int fd);
	int (*stat)(const char *path, struct stat *st);
	int (*fstat)(int fd, struct stat *st);
	void *(*mmap)(void *addr, size_t len, int prot, int flags, int fd,
		      off_t off);
	int (*munmap)(void *addr, size_t len);
	ssize_t (*pread)(int fd, void *buf, size_t len, off_t off);
};

extern struct smmap__os smmap__os;

/** The default table (libc), for tests restoring the seam. */
extern const struct smmap__os smmap__os_default;

#endif /* SMMAP_OS_H */
