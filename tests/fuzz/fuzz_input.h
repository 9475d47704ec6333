/*
 * fuzz_input.h - what the libFuzzer targets share: CHECK() and a reader of
 * the fuzzer's bytes (like LLVM's FuzzedDataProvider, for C).
 *
 * Reading past the end of the input yields zeros, so every input, however
 * short, is a complete test case.
 */
#ifndef SMMAP_FUZZ_INPUT_H
#define SMMAP_FUZZ_INPUT_H

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* abort() with the failed condition; libFuzzer saves the input. */
#define CHECK(cond)                                                        \
	do {                                                               \
		if (!(cond))                                               \
			fuzz_check_failed(__FILE__, __LINE__, #cond);      \
	} while (0)

static inline __attribute__((noreturn, unused)) void
fuzz_check_failed(const char *file, int line, const char *what)
{
	/* fd 2 itself: a target may have replaced the stream stderr. */
	dprintf(STDERR_FILENO, "%s:%d: check failed: %s\n", file, line, what);
	abort();
}

struct input {
	const uint8_t *p;
	size_t left;
};

static inline __attribute__((unused)) bool in_empty(const struct input *in)
{
	return in->left == 0;
}

static inline __attribute__((unused)) uint8_t in_u8(struct input *in)
{
	if (!in->left)
		return 0;
	in->left--;
	return *in->p++;
}

static inline __attribute__((unused)) uint64_t in_bytes(struct input *in,
							 unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)in_u8(in) << (8 * i);
	return v;
}

static inline __attribute__((unused)) uint64_t in_u64(struct input *in)
{
	return in_bytes(in, 8);
}

/* A value in [lo, hi], from as few bytes as the range needs. */
static inline __attribute__((unused)) uint64_t
in_range(struct input *in, uint64_t lo, uint64_t hi)
{
	uint64_t span = hi - lo, v;
	unsigned n = 0;

	if (hi <= lo)
		return lo;
	for (uint64_t s = span; s; s >>= 8)
		n++;
	v = in_bytes(in, n);
	return span == UINT64_MAX ? v : lo + v % (span + 1);
}

/* One of the n values of a table. */
#define IN_PICK(in, table) \
	((table)[in_range((in), 0, sizeof(table) / sizeof((table)[0]) - 1)])

/* Remove the files in dir, then dir (no subdirectories). */
static inline __attribute__((unused)) void fuzz_rmdir(const char *dir)
{
	char path[4096];
	struct dirent *e;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			unlink(path);
		}
	}
	closedir(d);
	rmdir(dir);
}

/*
 * Make a private directory "smmap-TAG-PID-XXXXXX" on tmpfs (/dev/shm), or
 * else in $TMPDIR or /tmp, into out.  A target that crashes (abort) leaves
 * its directory behind: remove those of processes that are gone.
 * @return true, false when no directory could be made.
 */
static inline __attribute__((unused)) bool
fuzz_tmpdir(char *out, size_t size, const char *tag)
{
	const char *bases[] = { "/dev/shm", getenv("TMPDIR"), "/tmp" };
	char prefix[64], stale[4096];

	snprintf(prefix, sizeof(prefix), "smmap-%s-", tag);
	for (size_t i = 0; i < sizeof(bases) / sizeof(bases[0]); i++) {
		DIR *d;
		struct dirent *e;

		if (!bases[i] || !(d = opendir(bases[i])))
			continue;
		while ((e = readdir(d))) {
			long pid;

			if (strncmp(e->d_name, prefix, strlen(prefix)) != 0)
				continue;
			pid = strtol(e->d_name + strlen(prefix), NULL, 10);
			if (pid <= 0 || kill((pid_t)pid, 0) == 0 ||
			    errno != ESRCH)
				continue;
			snprintf(stale, sizeof(stale), "%s/%s", bases[i],
				 e->d_name);
			fuzz_rmdir(stale);
		}
		closedir(d);
		snprintf(out, size, "%s/%s%ld-XXXXXX", bases[i], prefix,
			 (long)getpid());
		if (mkdtemp(out))
			return true;
	}
	out[0] = '\0';
	return false;
}

#endif /* SMMAP_FUZZ_INPUT_H */
