/*
 * testlib.h - helpers shared by the unit tests: patterned files in a private
 * temporary directory and a seeded, logged PRNG.
 *
 * Include order for cmocka 1.1: <stdarg.h> <stddef.h> <stdint.h> <setjmp.h>
 * then <cmocka.h>; this header does that.
 *
 * Diagnostics go to stderr as "# ..." lines: stdout carries TAP.
 */
#ifndef SMMAP_TESTLIB_H
#define SMMAP_TESTLIB_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "smmap.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>

/* smmap's test file size: 1000 * 1000 * 8 + 5195. */
#define TL_WINDOW_TEST_SIZE UINT64_C(8005195)

/**
 * The PRNG seed: $SMMAP_TEST_SEED if set, else from the clock.  Printed to
 * stderr once ("# seed=N, rerun with SMMAP_TEST_SEED=N").
 */
uint64_t tl_seed(void);
/** Reset the calling thread's PRNG stream to tl_seed() + stream. */
void tl_srand(uint64_t stream);
/** Next value of the calling thread's xorshift64* stream. */
uint64_t tl_rand(void);
/** Uniform in [lo, hi] (inclusive). */
uint64_t tl_rand_range(uint64_t lo, uint64_t hi);

/** Byte i of a file made with `salt` (0 for the default pattern). */
static inline unsigned char tl_pattern(uint64_t i, unsigned salt)
{
	return (unsigned char)((i * 7 + (i >> 8) + (uint64_t)salt * 131) & 0xff);
}

/** The private temporary directory (created on first use, removed at exit). */
const char *tl_tmpdir(void);
/**
 * Create tl_tmpdir()/NAME with `size` patterned bytes (tl_pattern(i, salt)).
 * Returns a malloc'd path; fails the test on error.
 */
char *tl_make_file(const char *name, uint64_t size, unsigned salt);
/** The whole content of a file (malloc'd); *size gets its length. */
unsigned char *tl_read_file(const char *path, uint64_t *size);
/** True when `n` bytes at `p` equal the pattern from file offset `ofs`. */
bool tl_check_pattern(const void *p, size_t n, uint64_t ofs, unsigned salt);
/** true when running under valgrind or a sanitizer twin (slower). */
bool tl_slow_variant(void);

/** Manager options for tl_manager(); a field left 0 keeps the default. */
struct tl_opts {
	uint64_t window;      /* sliding policy only */
	uint64_t max_handles;
	uint64_t max_mapped;
	unsigned max_fds;
	unsigned flags;
};

/** A new manager (fails the test if smmap_manager_new fails). */
smmap_manager *tl_manager(enum smmap_policy policy, struct tl_opts o);
/** A snapshot of the manager's counters. */
struct smmap_stats tl_stats(const smmap_manager *m);
/** Fail with the first file offset where got[0..n) differs from want. */
void tl_expect_bytes(const void *got, const void *want, size_t n, uint64_t ofs);
/** Fail with the first file offset where p[0..n) is not pattern `salt`. */
void tl_expect_pattern(const void *p, size_t n, uint64_t ofs, unsigned salt);
/** The cursor is valid, begins at ofs and shows pattern `salt` bytes. */
void tl_check_cursor(const smmap_cursor *c, uint64_t ofs, unsigned salt);

/*
 * Checks in worker threads: cmocka's asserts only work on the main thread,
 * so threads count failures (and print them); the test asserts the count
 * is 0 after joining.
 */
extern atomic_uint tl_failures;
#define TL_TCHECK(cond)                                                     \
	do {                                                                \
		if (!(cond)) {                                              \
			atomic_fetch_add(&tl_failures, 1);                  \
			fprintf(stderr, "# FAILED %s:%d: %s\n", __FILE__,   \
				__LINE__, #cond);                           \
		}                                                           \
	} while (0)

#endif /* SMMAP_TESTLIB_H */
