/*
 * os.c - default OS layer: plain libc wrappers (see os.h).
 */
#include "os.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

static int os_open(const char *path, int flags)
{
	return open(path, flags);
}

const struct smmap__os smmap__os_default = {
	.open = os_open,
	.close = close,
	.stat = stat,
	.fstat = fstat,
	.mmap = mmap,
	.munmap = munmap,
	.pread = pread,
};

struct smmap__os smmap__os = {
	.open = os_open,
	.close = close,
	.stat = stat,
	.fstat = fstat,
	.mmap = mmap,
	.munmap = munmap,
	.pread = pread,
};
