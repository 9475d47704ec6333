/*
 * test_limits.c - the handle and memory limits (hard and soft), the peak
 * counters, argument checks (smmap bugs B7, B8), empty files (B15), offsets
 * at the end of the file and the window size rounding.
 */
#include "testlib.h"

#include "smmap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t G;

static smmap_manager *new_manager(enum smmap_policy policy, uint64_t window,
				  uint64_t max_handles, uint64_t max_mapped,
				  unsigned flags)
{
	return tl_manager(policy, (struct tl_opts){ .window = window,
						  .max_handles = max_handles,
						  .max_mapped = max_mapped,
						  .flags = flags });
}

static void check_invalid(const smmap_cursor *c)
{
	assert_false(smmap_cursor_is_valid(c));
	assert_null(smmap_cursor_buffer(c));
	assert_null(smmap_cursor_map(c, NULL, NULL));
	assert_int_equal(smmap_cursor_size(c), 0);
}

/* max_handles is hard, in both policies. */
static void test_max_handles_hard(void **state)
{
	char *path = tl_make_file("lim-handles", 4 * G, 1);
	smmap_manager *m = new_manager(SMMAP_SLIDING, G, 2, SMMAP_UNLIMITED, 0);
	smmap_cursor c1, c2, c3;
	struct smmap_stats a;

	(void)state;
	assert_int_equal(smmap_max_file_handles(m), 2);
	assert_int_equal(smmap_cursor_init_path(&c1, m, path), 0);
	assert_int_equal(smmap_cursor_init_path(&c2, m, path), 0);
	assert_int_equal(smmap_cursor_init_path(&c3, m, path), 0);
	assert_int_equal(smmap_cursor_use_region(&c1, 0, 0), 1);
	assert_int_equal(smmap_cursor_use_region(&c2, (int64_t)G, 0), 1);
	a = tl_stats(m);
	assert_int_equal(smmap_cursor_use_region(&c3, 2 * (int64_t)G, 0),
			 -EAGAIN);
	check_invalid(&c3);
	assert_true(smmap_cursor_is_associated(&c3));
	assert_int_equal(tl_stats(m).limit_refusals, a.limit_refusals + 1);
	assert_int_equal(tl_stats(m).mappings, 2);
	assert_int_equal(tl_stats(m).misses, a.misses);
	/* A valid cursor that fails is left invalid. */
	assert_int_equal(smmap_cursor_use_region(&c2, 3 * (int64_t)G, 0), 1);
	assert_int_equal(smmap_cursor_use_region(&c3, 0, 0), 1); /* hit */
	assert_int_equal(smmap_cursor_use_region(&c3, (int64_t)G, 0), -EAGAIN);
	check_invalid(&c3);
	/* The others are untouched. */
	tl_check_cursor(&c1, 0, 1);
	tl_check_cursor(&c2, 3 * G, 1);
	/* After a release the same call succeeds, evicting the idle one. */
	smmap_cursor_unuse_region(&c1);
	a = tl_stats(m);
	assert_int_equal(smmap_cursor_use_region(&c3, 2 * (int64_t)G, 0), 1);
	tl_check_cursor(&c3, 2 * G, 1);
	assert_int_equal(tl_stats(m).evictions, a.evictions + 1);
	assert_int_equal(tl_stats(m).mappings, 2);
	assert_true(tl_stats(m).peak_mappings <= 2);
	smmap_cursor_dispose(&c1);
	smmap_cursor_dispose(&c2);
	smmap_cursor_dispose(&c3);
	assert_int_equal(smmap_manager_free(m), 0);
	free(path);
}

/* B11: smmap's static manager ignores max_open_handles; libsmmap does not. */
static void test_max_handles_static(void **state)
{
	char *pa = tl_make_file("lim-static-a", 3 * G, 2);
	char *pb = tl_make_file("lim-static-b", 2 * G, 3);
	smmap_manager *m = new_manager(SMMAP_STATIC, 0, 1, SMMAP_UNLIMITED, 0);
	smmap_cursor a, b;

	(void)state;
	assert_int_equal(smmap_window_size(m), 0);
	assert_int_equal(smmap_cursor_init_path(&a, m, pa), 0);
	assert_int_equal(smmap_cursor_init_path(&b, m, pb), 0);
	assert_int_equal(smmap_cursor_use_region(&a, (int64_t)G, 0), 1);
	tl_check_cursor(&a, G, 2);
	assert_int_equal(smmap_cursor_size(&a), 2 * G); /* to end of file */
	assert_int_equal(smmap_cursor_use_region(&b, 0, 0), -EAGAIN);
	check_invalid(&b);
	smmap_cursor_unuse_region(&a);
	assert_int_equal(smmap_cursor_use_region(&b, 0, 0), 1);
	tl_check_cursor(&b, 0, 3);
	assert_int_equal(tl_stats(m).evictions, 1);
	assert_int_equal(tl_stats(m).peak_mappings, 1);
	smmap_cursor_dispose(&a);
	smmap_cursor_dispose(&b);
	assert_int_equal(smmap_manager_free(m), 0);
	free(pa);
	free(pb);
}

/* The default memory limit is soft: it over-allocates when all is pinned. */
static void test_soft_memory_limit(void **state)
{
	char *path = tl_make_file("lim-soft", 5 * G, 4);
	smmap_manager *m = new_manager(SMMAP_SLIDING, G, SMMAP_UNLIMITED,
				       2 * G, 0);
	smmap_cursor c[4];
	struct smmap_stats a;

	(void)state;
	assert_int_equal(smmap_max_mapped_memory_size(m), 2 * G);
	for (int i = 0; i < 4; i++)
		assert_int_equal(smmap_cursor_init_path(&c[i], m, path), 0);
	assert_int_equal(smmap_cursor_use_region(&c[0], 0, 0), 1);
	assert_int_equal(smmap_cursor_use_region(&c[1], (int64_t)G, 0), 1);
	assert_int_equal(tl_stats(m).overcommits, 0);
	/* All pinned: the third window is mapped anyway. */
	assert_int_equal(smmap_cursor_use_region(&c[2], 2 * (int64_t)G, 0), 1);
	tl_check_cursor(&c[2], 2 * G, 4);
	a = tl_stats(m);
	assert_int_equal(a.overcommits, 1);
	assert_int_equal(a.mapped_bytes, 3 * G);
	assert_int_equal(smmap_mapped_memory_size(m), 3 * G);
	assert_int_equal(a.peak_mapped_bytes, 3 * G);
	assert_int_equal(a.limit_refusals, 0);
	assert_int_equal(a.evictions, 0);
	/* One idle region: it is evicted first, then the rest overcommits. */
	smmap_cursor_unuse_region(&c[0]);
	assert_int_equal(smmap_cursor_use_region(&c[3], 3 * (int64_t)G, 0), 1);
	tl_check_cursor(&c[3], 3 * G, 4);
	a = tl_stats(m);
	assert_int_equal(a.evictions, 1);
	assert_int_equal(a.overcommits, 2);
	assert_int_equal(a.mapped_bytes, 3 * G);
	/* With idle regions the limit is met again: evict down to it. */
	for (int i = 0; i < 4; i++)
		smmap_cursor_unuse_region(&c[i]);
	assert_int_equal(smmap_cursor_use_region(&c[0], 4 * (int64_t)G, 0), 1);
	tl_check_cursor(&c[0], 4 * G, 4);
	a = tl_stats(m);
	assert_int_equal(a.evictions, 3);
	assert_int_equal(a.overcommits, 2);
	assert_int_equal(a.mapped_bytes, 2 * G);
	for (int i = 0; i < 4; i++)
		smmap_cursor_dispose(&c[i]);
	assert_int_equal(smmap_manager_free(m), 0);
	free(path);
}

/* SMMAP_HARD_MEMORY_LIMIT: never above the limit. */
static void test_hard_memory_limit(void **state)
{
	char *path = tl_make_file("lim-hard", 5 * G, 5);
	smmap_manager *m = new_manager(SMMAP_SLIDING, G, SMMAP_UNLIMITED,
				       2 * G, SMMAP_HARD_MEMORY_LIMIT);
	smmap_cursor c[3];
	struct smmap_stats a;

	(void)state;
	for (int i = 0; i < 3; i++)
		assert_int_equal(smmap_cursor_init_path(&c[i], m, path), 0);
	assert_int_equal(smmap_cursor_use_region(&c[0], 0, 0), 1);
	assert_int_equal(smmap_cursor_use_region(&c[1], (int64_t)G, 0), 1);
	a = tl_stats(m);
	assert_int_equal(smmap_cursor_use_region(&c[2], 2 * (int64_t)G, 0),
			 -EAGAIN);
	check_invalid(&c[2]);
	assert_int_equal(tl_stats(m).limit_refusals, a.limit_refusals + 1);
	assert_int_equal(tl_stats(m).mapped_bytes, 2 * G);
	assert_int_equal(tl_stats(m).overcommits, 0);
	smmap_cursor_unuse_region(&c[0]);
	assert_int_equal(smmap_cursor_use_region(&c[2], 2 * (int64_t)G, 0), 1);
	tl_check_cursor(&c[2], 2 * G, 5);
	assert_int_equal(tl_stats(m).evictions, a.evictions + 1);
	assert_int_equal(tl_stats(m).mapped_bytes, 2 * G);
	assert_true(tl_stats(m).peak_mapped_bytes <= 2 * G);
	assert_int_equal(tl_stats(m).overcommits, 0);
	for (int i = 0; i < 3; i++)
		smmap_cursor_dispose(&c[i]);
	assert_int_equal(smmap_manager_free(m), 0);
	free(path);
}

/* A window larger than a hard limit can never be mapped: -ENOMEM. */
static void test_window_above_hard_limit(void **state)
{
	char *big = tl_make_file("lim-big", 3 * G, 6);
	char *small = tl_make_file("lim-small", G, 7);
	char *tail = tl_make_file("lim-tail", 4 * G + 100, 8);
	smmap_manager *ms = new_manager(SMMAP_STATIC, 0, SMMAP_UNLIMITED,
					2 * G, SMMAP_HARD_MEMORY_LIMIT);
	smmap_manager *mw = new_manager(SMMAP_SLIDING, 4 * G, SMMAP_UNLIMITED,
					2 * G, SMMAP_HARD_MEMORY_LIMIT);
	smmap_cursor c;
	struct smmap_stats a;

	(void)state;
	/* Static: the whole file is the window. */
	assert_int_equal(smmap_cursor_init_path(&c, ms, big), 0);
	a = tl_stats(ms);
	assert_int_equal(smmap_cursor_use_region(&c, 0, 0), -ENOMEM);
	check_invalid(&c);
	assert_int_equal(tl_stats(ms).limit_refusals, a.limit_refusals + 1);
	assert_int_equal(tl_stats(ms).mappings, 0);
	assert_int_equal(tl_stats(ms).mapped_bytes, 0);
	assert_int_equal(tl_stats(ms).mmap_calls, 0);
	smmap_cursor_dispose(&c);
	assert_int_equal(smmap_cursor_init_path(&c, ms, small), 0);
	assert_int_equal(smmap_cursor_use_region(&c, 0, 0), 1);
	tl_check_cursor(&c, 0, 7);
	smmap_cursor_dispose(&c);
	assert_true(tl_stats(ms).peak_mapped_bytes <= 2 * G);
	assert_int_equal(smmap_manager_free(ms), 0);

	/* Sliding with a window above the limit: full windows are refused,
	 * a window clamped by the end of the file fits. */
	assert_int_equal(smmap_cursor_init_path(&c, mw, tail), 0);
	assert_int_equal(smmap_cursor_use_region(&c, 10, 0), -ENOMEM);
	check_invalid(&c);
	assert_int_equal(smmap_cursor_use_region(&c, 4 * (int64_t)G + 1, 0), 1);
	tl_check_cursor(&c, 4 * G + 1, 8);
	assert_int_equal(smmap_cursor_size(&c), 99);
	assert_int_equal(tl_stats(mw).mapped_bytes, 100);
	assert_int_equal(tl_stats(mw).limit_refusals, 1);
	smmap_cursor_dispose(&c);
	assert_int_equal(smmap_manager_free(mw), 0);
	free(big);
	free(small);
	free(tail);
}

/* Random pins and moves: limits and peaks checked after every call. */
static void test_peaks_within_limits(void **state)
{
	enum { NC = 5, NWIN = 10 };
	char *pa = tl_make_file("lim-peak-a", NWIN * G, 9);
	char *pb = tl_make_file("lim-peak-b", NWIN * G / 2 + 333, 10);
	/* Three full windows exceed the memory limit, the tail one fits. */
	const uint64_t lim = 5 * G + 333;
	smmap_manager *m = new_manager(SMMAP_SLIDING, 2 * G, 3, lim,
				       SMMAP_HARD_MEMORY_LIMIT);
	smmap_cursor c[NC];
	uint64_t sizes[2] = { NWIN * G, NWIN * G / 2 + 333 };
	unsigned eagain = 0, ok = 0;

	(void)state;
	tl_srand(3);
	for (int i = 0; i < NC; i++)
		assert_int_equal(smmap_cursor_init_path(&c[i], m,
							i & 1 ? pb : pa), 0);
	for (unsigned step = 0; step < 3000; step++) {
		unsigned i = (unsigned)tl_rand_range(0, NC - 1);
		unsigned fi = i & 1;
		uint64_t ofs = tl_rand_range(0, sizes[fi] - 1);
		struct smmap_stats s;
		int ret;

		if (tl_rand_range(0, 3) == 0) {
			smmap_cursor_unuse_region(&c[i]);
		} else {
			ret = smmap_cursor_use_region(&c[i], (int64_t)ofs, 0);
			if (ret == -EAGAIN) {
				eagain++;
				check_invalid(&c[i]);
			} else {
				assert_int_equal(ret, 1);
				tl_check_cursor(&c[i], ofs, fi ? 10 : 9);
				ok++;
			}
		}
		s = tl_stats(m);
		assert_true(s.mappings <= 3);
		assert_true(s.mapped_bytes <= lim);
		assert_true(s.peak_mappings <= 3);
		assert_true(s.peak_mapped_bytes <= lim);
		assert_true(s.fds <= s.max_fds);
		assert_true(s.peak_fds <= s.max_fds);
		assert_int_equal(s.overcommits, 0);
	}
	fprintf(stderr, "# %u successful, %u -EAGAIN\n", ok, eagain);
	assert_true(eagain > 0);
	assert_int_equal(tl_stats(m).limit_refusals, eagain);
	assert_true(tl_stats(m).evictions > 0);
	assert_in_range(tl_stats(m).peak_mappings, 2, 3);
	assert_in_range(tl_stats(m).peak_mapped_bytes, 4 * G, lim);
	for (int i = 0; i < NC; i++)
		smmap_cursor_dispose(&c[i]);
	assert_int_equal(smmap_manager_free(m), 0);
	free(pa);
	free(pb);
}

static int try_options(const smmap_options *o)
{
	smmap_manager *m = (smmap_manager *)&m; /* poison: must become NULL */
	int ret = smmap_manager_new(&m, o);

	if (ret == 0) {
		assert_non_null(m);
		assert_int_equal(smmap_manager_free(m), 0);
	} else {
		assert_null(m);
	}
	return ret;
}

/* B7 and friends: invalid manager options. */
static void test_option_checks(void **state)
{
	smmap_options o;
	smmap_manager *m;

	(void)state;
	/* Defaults (NULL options): smmap's sliding manager. */
	assert_int_equal(smmap_manager_new(&m, NULL), 0);
	assert_int_equal(smmap_window_size(m),
			 smmap_is_64_bit() ? UINT64_C(1) << 30
					   : UINT64_C(64) << 20);
	assert_int_equal(smmap_max_mapped_memory_size(m),
			 smmap_is_64_bit() ? UINT64_C(8) << 30
					   : UINT64_C(1) << 30);
	assert_int_equal(smmap_max_file_handles(m), SMMAP_UNLIMITED);
	assert_int_equal(smmap_max_fds(m), 8);
	assert_int_equal(smmap_manager_free(m), 0);
	assert_int_equal(smmap_manager_free(NULL), 0);

	smmap_options_init(&o, SMMAP_SLIDING);
	assert_int_equal(try_options(&o), 0);
	o.window_size = 0; /* B7 */
	assert_int_equal(try_options(&o), -EINVAL);
	smmap_options_init(&o, SMMAP_STATIC);
	assert_int_equal(o.window_size, 0);
	assert_int_equal(try_options(&o), 0); /* 0 is fine for static */
	o.window_size = 12345;                /* and ignored */
	assert_int_equal(smmap_manager_new(&m, &o), 0);
	assert_int_equal(smmap_window_size(m), 0);
	assert_int_equal(smmap_manager_free(m), 0);

	smmap_options_init(&o, SMMAP_SLIDING);
	o.max_mapped = 0;
	assert_int_equal(try_options(&o), -EINVAL);
	smmap_options_init(&o, SMMAP_SLIDING);
	o.max_handles = 0;
	assert_int_equal(try_options(&o), -EINVAL);
	smmap_options_init(&o, SMMAP_SLIDING);
	o.max_fds = 0;
	assert_int_equal(try_options(&o), -EINVAL);
	smmap_options_init(&o, SMMAP_STATIC);
	o.max_handles = 0;
	assert_int_equal(try_options(&o), -EINVAL);
	smmap_options_init(&o, SMMAP_SLIDING);
	o.version = 0;
	assert_int_equal(try_options(&o), -EINVAL);
	o.version = SMMAP_OPTIONS_VERSION + 1;
	assert_int_equal(try_options(&o), -EINVAL);
	smmap_options_init(&o, SMMAP_SLIDING);
	o.policy = (enum smmap_policy)7;
	assert_int_equal(try_options(&o), -EINVAL);
	smmap_options_init(&o, SMMAP_SLIDING);
	o.flags = 1u << 7;
	assert_int_equal(try_options(&o), -EINVAL);
	o.flags = SMMAP_HARD_MEMORY_LIMIT | SMMAP_NOATIME;
	assert_int_equal(try_options(&o), 0);
}

/* B8: negative offsets and ranges past INT64_MAX are -EINVAL. */
static void test_offset_checks(void **state)
{
	char *path = tl_make_file("lim-args", 3 * G, 11);
	smmap_manager *m = new_manager(SMMAP_SLIDING, G, SMMAP_UNLIMITED,
				       SMMAP_UNLIMITED, 0);
	unsigned char buf[16];
	smmap_cursor c, u;
	smmap_buffer b;
	smmap_file *f;

	(void)state;
	assert_int_equal(smmap_file_new_path(&f, m, path, 0), 0);
	assert_int_equal(smmap_cursor_init_file(&c, f), 0);
	assert_int_equal(smmap_cursor_use_region(&c, 5, 0), 1);
	assert_int_equal(smmap_cursor_use_region(&c, -10, 5), -EINVAL);
	check_invalid(&c); /* left invalid on error */
	assert_true(smmap_cursor_is_associated(&c));
	assert_int_equal(smmap_cursor_use_region(&c, -1, 0), -EINVAL);
	assert_int_equal(smmap_cursor_use_region(&c, INT64_MIN, 0), -EINVAL);
	assert_int_equal(smmap_cursor_use_region(&c, INT64_MAX, 1), -EINVAL);
	assert_int_equal(smmap_cursor_use_region(&c, 1, SIZE_MAX), -EINVAL);
	assert_int_equal(smmap_cursor_use_region(&c, INT64_MAX - 10, 10), 0);
	assert_int_equal(smmap_cursor_use_region(&c, INT64_MAX - 9, 10), -EINVAL);
	assert_int_equal(smmap_cursor_use_region(&c, INT64_MAX, 0), 0);
	assert_false(smmap_cursor_includes_ofs(&c, -1));
	assert_int_equal(smmap_cursor_read(&c, buf, 4, -1), -EINVAL);
	assert_int_equal(smmap_cursor_read(&c, buf, SIZE_MAX, 1), -EINVAL);
	assert_int_equal(smmap_cursor_read(&c, buf, 2, INT64_MAX), -EINVAL);
	assert_int_equal(smmap_file_pread(f, buf, 4, -1), -EINVAL);
	assert_int_equal(smmap_file_pread(f, buf, SIZE_MAX, 1), -EINVAL);
	assert_int_equal(smmap_file_pread(NULL, buf, 4, 0), -EINVAL);
	/* Valid again afterwards. */
	assert_int_equal(smmap_cursor_read(&c, buf, sizeof(buf), 7),
			 (ssize_t)sizeof(buf));
	assert_true(tl_check_pattern(buf, sizeof(buf), 7, 11));
	assert_int_equal(smmap_cursor_use_region(&c, 7, 0), 1);
	assert_true(smmap_cursor_includes_ofs(&c, 7));
	assert_false(smmap_cursor_includes_ofs(&c, 6));
	assert_false(smmap_cursor_includes_ofs(&c, -7));

	/* Buffers. */
	smmap_buffer_init(&b);
	assert_int_equal(smmap_buffer_len(&b), 0); /* B19 */
	assert_null(smmap_buffer_cursor(&b));
	assert_int_equal(smmap_buffer_byte(&b, 0), -EINVAL);
	assert_int_equal(smmap_buffer_begin(&b, NULL, 0, SMMAP_TO_END), -EINVAL);
	assert_int_equal(smmap_buffer_begin(&b, &c, -1, SMMAP_TO_END), -EINVAL);
	assert_int_equal(smmap_buffer_len(&b), 0);
	assert_int_equal(smmap_buffer_begin(&b, &c, 10, 100), 0);
	assert_int_equal(smmap_buffer_len(&b), 100);
	assert_int_equal(smmap_buffer_copy(&b, buf, 5, 3), -EINVAL); /* B6 */
	assert_int_equal(smmap_buffer_copy(&b, buf, 0, 101), -ERANGE);
	assert_int_equal(smmap_buffer_copy(&b, buf, -101, -99), -ERANGE);
	assert_int_equal(smmap_buffer_byte(&b, 100), -ERANGE);
	assert_int_equal(smmap_buffer_byte(&b, -101), -ERANGE);
	assert_int_equal(smmap_buffer_byte(&b, -100), tl_pattern(10, 11));
	assert_int_equal(smmap_buffer_byte(&b, 99), tl_pattern(109, 11));
	assert_int_equal(smmap_buffer_copy(&b, buf, 90, 100), 10);
	assert_true(tl_check_pattern(buf, 10, 100, 11));
	/* A failed begin leaves the length 0 (B20). */
	assert_int_equal(smmap_buffer_begin(&b, NULL, -5, 10), -EINVAL);
	assert_int_equal(smmap_buffer_len(&b), 0);
	smmap_buffer_end(&b);

	/* Unassociated cursors and NULL files. */
	smmap_cursor_init(&u, m);
	assert_false(smmap_cursor_is_associated(&u));
	assert_int_equal(smmap_cursor_use_region(&u, 0, 0), -EINVAL);
	assert_int_equal(smmap_cursor_read(&u, buf, 1, 0), -EINVAL);
	assert_int_equal(smmap_buffer_begin(&b, &u, 0, 1), -EINVAL);
	assert_int_equal(smmap_cursor_init_file(&u, NULL), -EINVAL);
	assert_false(smmap_cursor_is_associated(&u));
	smmap_cursor_dispose(&u);
	assert_int_equal(smmap_file_revalidate(NULL, NULL), -EINVAL);
	{
		smmap_file *g = (smmap_file *)&g;
		char missing[512];
		int fd;

		snprintf(missing, sizeof(missing), "%s/does-not-exist",
			 tl_tmpdir());
		assert_int_equal(smmap_file_new_path(&g, m, missing, 0),
				 -ENOENT);
		assert_null(g);
		assert_int_equal(smmap_file_new_fd(&g, m, -1), -EINVAL);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		assert_true(fd >= 0);
		close(fd);
		assert_int_equal(smmap_file_new_fd(&g, m, fd), -EBADF);
		assert_int_equal(smmap_file_new_opener(&g, m, NULL, NULL),
				 -EINVAL);
	}
	smmap_cursor_dispose(&c);
	smmap_file_free(f);
	assert_int_equal(smmap_manager_free(m), 0);
	free(path);
}

/* B15: empty files map nothing and read as empty. */
static void test_empty_file(void **state)
{
	char *path = tl_make_file("lim-empty", 0, 0);

	(void)state;
	for (int policy = 0; policy < 2; policy++) {
		smmap_manager *m = new_manager((enum smmap_policy)policy, G,
					       SMMAP_UNLIMITED,
					       SMMAP_UNLIMITED, 0);
		unsigned char buf[8] = { 0x55 };
		uint64_t size = 99;
		smmap_cursor c;
		smmap_buffer b;
		smmap_file *f;

		assert_int_equal(smmap_file_new_path(&f, m, path, 0), 0);
		assert_int_equal(smmap_file_size(f), 0);
		assert_int_equal(smmap_cursor_init_file(&c, f), 0);
		assert_int_equal(smmap_cursor_file_size(&size, &c), 0);
		assert_int_equal(size, 0);
		assert_int_equal(smmap_cursor_use_region(&c, 0, 0), 0);
		check_invalid(&c);
		assert_true(smmap_cursor_is_associated(&c));
		assert_int_equal(smmap_cursor_use_region(&c, 0, 100), 0);
		assert_int_equal(smmap_cursor_read(&c, buf, sizeof(buf), 0), 0);
		assert_int_equal(buf[0], 0x55);
		smmap_buffer_init(&b);
		assert_int_equal(smmap_buffer_begin(&b, &c, 0, SMMAP_TO_END), 0);
		assert_int_equal(smmap_buffer_len(&b), 0);
		assert_ptr_equal(smmap_buffer_cursor(&b), &c);
		assert_int_equal(smmap_buffer_copy(&b, buf, 0, 0), 0);
		assert_int_equal(smmap_buffer_copy(&b, buf, 0, 1), -ERANGE);
		assert_int_equal(smmap_buffer_byte(&b, 0), -ERANGE);
		assert_int_equal(smmap_buffer_byte(&b, -1), -ERANGE);
		smmap_buffer_end(&b);
		smmap_buffer_end(&b);
		assert_int_equal(smmap_file_pread(f, buf, sizeof(buf), 0), 0);
		assert_int_equal(tl_stats(m).mappings, 0);
		assert_int_equal(tl_stats(m).mmap_calls, 0);
		assert_int_equal(tl_stats(m).map_failures, 0);
		smmap_cursor_dispose(&c);
		smmap_file_free(f);
		assert_int_equal(smmap_manager_free(m), 0);
	}
	free(path);
}

/* An offset at or past the end of the file: 0 and an invalid cursor. */
static void test_offset_at_eof(void **state)
{
	uint64_t size = 3 * G + 5;
	char *path = tl_make_file("lim-eof", size, 12);
	smmap_manager *m = new_manager(SMMAP_SLIDING, G, SMMAP_UNLIMITED,
				       SMMAP_UNLIMITED, 0);
	unsigned char buf[64];
	smmap_cursor c;
	smmap_buffer b;

	(void)state;
	assert_int_equal(smmap_cursor_init_path(&c, m, path), 0);
	assert_int_equal(smmap_cursor_use_region(&c, (int64_t)size - 1, 0), 1);
	assert_int_equal(smmap_cursor_size(&c), 1);
	assert_int_equal(smmap_cursor_ofs_end(&c), size);
	tl_check_cursor(&c, size - 1, 12);
	assert_int_equal(smmap_cursor_use_region(&c, (int64_t)size, 0), 0);
	check_invalid(&c);
	assert_true(smmap_cursor_is_associated(&c));
	assert_int_equal(smmap_cursor_use_region(&c, (int64_t)size - 1, 0), 1);
	assert_int_equal(smmap_cursor_use_region(&c, 10 * (int64_t)G, 5), 0);
	check_invalid(&c);
	/* Reads: 0 at the end, short across it. */
	assert_int_equal(smmap_cursor_read(&c, buf, sizeof(buf), (int64_t)size),
			 0);
	assert_int_equal(smmap_cursor_read(&c, buf, sizeof(buf),
					   (int64_t)size - 10),
			 10);
	assert_true(tl_check_pattern(buf, 10, size - 10, 12));
	/* Buffers: -ERANGE at the end of a non-empty file, length 0. */
	smmap_buffer_init(&b);
	assert_int_equal(smmap_buffer_begin(&b, &c, (int64_t)size, 1), -ERANGE);
	assert_int_equal(smmap_buffer_len(&b), 0);
	assert_int_equal(smmap_buffer_begin(&b, &c, (int64_t)size + 100, 1),
			 -ERANGE);
	assert_int_equal(smmap_buffer_len(&b), 0);
	assert_int_equal(smmap_buffer_begin(&b, &c, (int64_t)size - 3,
					    SMMAP_TO_END), 0);
	assert_int_equal(smmap_buffer_len(&b), 3);
	assert_int_equal(smmap_buffer_byte(&b, -1), tl_pattern(size - 1, 12));
	/* Clamped to the end of the file. */
	assert_int_equal(smmap_buffer_begin(&b, &c, (int64_t)size - 3, 1000),
			 0);
	assert_int_equal(smmap_buffer_len(&b), 3);
	smmap_buffer_end(&b);
	smmap_cursor_dispose(&c);
	assert_int_equal(smmap_manager_free(m), 0);
	free(path);
}

/* window_size is rounded up to the page size; regions lie on its grid. */
static void test_window_rounding(void **state)
{
	const uint64_t req[] = { 1, G - 1, G, G + 1, 3 * G - 1, 4 * G };
	char *path = tl_make_file("lim-round", 7 * G + 3, 13);

	(void)state;
	for (unsigned i = 0; i < sizeof(req) / sizeof(req[0]); i++) {
		uint64_t w = (req[i] + G - 1) / G * G;
		smmap_manager *m = new_manager(SMMAP_SLIDING, req[i],
					       SMMAP_UNLIMITED,
					       SMMAP_UNLIMITED, 0);
		struct smmap_region_info info;
		smmap_cursor c;

		assert_int_equal(smmap_window_size(m), w);
		assert_int_equal(tl_stats(m).window_size, w);
		assert_int_equal(w % G, 0);
		assert_true(w >= req[i] && w - req[i] < G);
		assert_int_equal(smmap_cursor_init_path(&c, m, path), 0);
		for (uint64_t ofs = 0; ofs < 7 * G + 3; ofs += G / 2 + 1) {
			uint64_t rofs, end;
			size_t rlen;

			assert_int_equal(smmap_cursor_use_region(&c, (int64_t)ofs,
								 0), 1);
			assert_int_equal(smmap_cursor_region(&info, &c), 0);
			assert_non_null(smmap_cursor_map(&c, &rofs, &rlen));
			assert_int_equal(rofs, info.ofs);
			assert_int_equal(rlen, info.size);
			end = (ofs / w + 1) * w;
			if (end > 7 * G + 3)
				end = 7 * G + 3;
			/* B9: never larger than the window, on the grid. */
			assert_int_equal(info.ofs, ofs / w * w);
			assert_int_equal(info.ofs + info.size, end);
			assert_true(info.size <= w);
			assert_int_equal(smmap_cursor_ofs_end(&c), end);
			tl_check_cursor(&c, ofs, 13);
		}
		smmap_cursor_dispose(&c);
		assert_int_equal(smmap_manager_free(m), 0);
	}
	free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_max_handles_hard),
		cmocka_unit_test(test_max_handles_static),
		cmocka_unit_test(test_soft_memory_limit),
		cmocka_unit_test(test_hard_memory_limit),
		cmocka_unit_test(test_window_above_hard_limit),
		cmocka_unit_test(test_peaks_within_limits),
		cmocka_unit_test(test_option_checks),
		cmocka_unit_test(test_offset_checks),
		cmocka_unit_test(test_empty_file),
		cmocka_unit_test(test_offset_at_eof),
		cmocka_unit_test(test_window_rounding),
	};

	G = smmap_granularity();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
