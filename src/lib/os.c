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

/* The libc functions, for the table and for tests restoring it. */
#define OS_LIBC                 \
	{                       \
		.open = os_open,    \
		.close = close,     \
		.stat = stat,       \
		.fstat = fstat,     \
		.mmap = mmap,       \
		.munmap = munmap,   \
		.pread = pread,     \
	}

const struct smmap__os smmap__os_default = OS_LIBC;

struct smmap__os smmap__os = OS_LIBC;
