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

#endif /* SMMAP_TESTLIB_H */
