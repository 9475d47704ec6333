/*
 * test_file.c - file handles: opener handles (no descriptor held between
 * mappings), errors from openers, smmap_file_pread (the fallback read), the
 * descriptor budget (max_fds, smmap_fd_acquire/release) and freeing a
 * handle still used by cursors.
 */
#include "testlib.h"

#include "internal.h" /* white-box: is m->lock held during the opener? */
#include "smmap.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t G;

static smmap_manager *new_manager(uint64_t max_handles, unsigned max_fds,
				  unsigned flags)
{
	return tl_manager(SMMAP_SLIDING,
			  (struct tl_opts){ .window = G, .max_handles = max_handles,
					    .max_fds = max_fds, .flags = flags });
}

static unsigned count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	unsigned n = 0;

	assert_non_null(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* An opener that counts its calls and checks how it is called. */
struct test_opener {
	const char *path;
	smmap_manager *m;
	int fail;             /* return this (negative) instead of opening */
	unsigned fail_count;  /* ... this many times (UINT_MAX: always) */
	unsigned opens;
	unsigned lock_held;   /* calls made with m->lock held */
	uint64_t max_fds_seen, min_fds_seen;
};

static int test_open(void *ctx)
{
	struct test_opener *to = ctx;
	struct smmap_stats s;
	int fd;

	to->opens++;
	/* No library lock held... */
	if (pthread_mutex_trylock(&to->m->lock) == 0)
		pthread_mutex_unlock(&to->m->lock);
	else
		to->lock_held++;
	/* ...and a descriptor slot taken for us. */
	smmap_stats_get(&s, to->m);
	if (s.fds > to->max_fds_seen)
		to->max_fds_seen = s.fds;
	if (s.fds < to->min_fds_seen)
		to->min_fds_seen = s.fds;
	if (to->fail_count > 0) {
		if (to->fail_count != UINT_MAX)
			to->fail_count--;
		return to->fail;
	}
	fd = open(to->path, O_RDONLY | O_CLOEXEC);
	return fd >= 0 ? fd : -errno;
}

static void opener_init(struct test_opener *to, const char *path,
			smmap_manager *m)
{
	memset(to, 0, sizeof(*to));
	to->path = path;
	to->m = m;
	to->min_fds_seen = UINT64_MAX;
}

/* An opener handle opens only to map, and holds no descriptor between. */
static void test_opener_holds_no_fd(void **state)
{
	char *path = tl_make_file("file-opener", 6 * G + 33, 1);
	smmap_manager *m = new_manager(SMMAP_UNLIMITED, 8, 0);
	struct test_opener to;
	struct smmap_opener op = { test_open, &to };
	unsigned fds0 = count_fds();
	const char *p;
	struct stat st;
	smmap_cursor c;
	smmap_file *f;
	int fd;

	(void)state;
	opener_init(&to, path, m);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(smmap_file_new_opener(&f, m, &op, &st), 0);
	assert_int_equal(to.opens, 0); /* not opened at creation */
	assert_int_equal(smmap_file_size(f), 6 * G + 33);
	assert_int_equal(smmap_cursor_init_file(&c, f), 0);
	assert_int_equal(smmap_cursor_path(&p, &c), -EINVAL);
	assert_int_equal(smmap_cursor_fd(&fd, &c), -EINVAL);
	for (unsigned i = 0; i < 7; i++) {
		assert_int_equal(smmap_cursor_use_region(&c, (int64_t)(i * G), 0),
				 1);
		tl_check_cursor(&c, i * G, 1);
		assert_int_equal(to.opens, i + 1);
		assert_int_equal(count_fds(), fds0);
		assert_int_equal(tl_stats(m).fds, 0);
	}
	/* Hits do not open. */
	for (unsigned i = 0; i < 7; i++)
		assert_int_equal(smmap_cursor_use_region(&c, (int64_t)(i * G + 1),
							 0), 1);
	assert_int_equal(to.opens, 7);
	/* Revalidation opens through the opener too, and closes. */
	assert_int_equal(smmap_file_revalidate(f, NULL), 0);
	assert_int_equal(to.opens, 8);
	assert_int_equal(count_fds(), fds0);
	assert_int_equal(to.lock_held, 0);
	assert_int_equal(to.min_fds_seen, 1);
	assert_int_equal(to.max_fds_seen, 1);
	assert_int_equal(tl_stats(m).fds, 0);
	assert_int_equal(tl_stats(m).peak_fds, 1);
	smmap_cursor_dispose(&c);
	smmap_file_free(f);
	smmap_collect(m);
	assert_int_equal(smmap_manager_free(m), 0);
	assert_int_equal(count_fds(), fds0);
	free(path);
}

/* Errors from the opener are returned; resource errors flush and retry. */
static void test_opener_errors(void **state)
{
	char *path = tl_make_file("file-opener-err", 4 * G, 2);
	smmap_manager *m = new_manager(SMMAP_UNLIMITED, 8, 0);
	struct test_opener to;
	struct smmap_opener op = { test_open, &to };
	unsigned fds0 = count_fds();
	struct smmap_stats a, b;
	struct stat st;
	smmap_cursor c;
	smmap_file *f;

	(void)state;
	opener_init(&to, path, m);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(smmap_file_new_opener(&f, m, &op, &st), 0);
	assert_int_equal(smmap_cursor_init_file(&c, f), 0);
	assert_int_equal(smmap_cursor_use_region(&c, 0, 0), 1);
	smmap_cursor_unuse_region(&c); /* one idle region */

	static const int errs[] = { -ESTALE, -ENOENT, -EACCES };
	for (unsigned k = 0; k < 3; k++) {
		a = tl_stats(m);
		to.opens = 0;
		to.fail = errs[k];
		to.fail_count = 1;
		assert_int_equal(smmap_cursor_use_region(&c, (int64_t)G, 0),
				 errs[k]);
		assert_false(smmap_cursor_is_valid(&c));
		b = tl_stats(m);
		assert_int_equal(to.opens, 1); /* no retry */
		assert_int_equal(b.map_failures, a.map_failures + 1);
		assert_int_equal(b.collected, a.collected); /* no flush */
		assert_int_equal(b.mappings, 1);
		assert_int_equal(b.fds, 0); /* the slot was given back */
		/* revalidate reports it too, and changes nothing. */
		to.fail_count = 1;
		assert_int_equal(smmap_file_revalidate(f, NULL), errs[k]);
		assert_int_equal(smmap_file_size(f), 4 * G);
		assert_int_equal(tl_stats(m).fds, 0);
	}
	/* EMFILE from the opener: flush, retry, success. */
	a = tl_stats(m);
	to.opens = 0;
	to.fail = -EMFILE;
	to.fail_count = 1;
	assert_int_equal(smmap_cursor_use_region(&c, (int64_t)G, 0), 1);
	tl_check_cursor(&c, G, 2);
	b = tl_stats(m);
	assert_int_equal(to.opens, 2);
	assert_int_equal(b.collected, a.collected + 1);
	assert_int_equal(b.map_failures, a.map_failures + 1);
	assert_int_equal(b.mappings, 1);
	/* EMFILE for good: -EMFILE after one retry. */
	to.opens = 0;
	to.fail_count = UINT_MAX;
	assert_int_equal(smmap_cursor_use_region(&c, 2 * (int64_t)G, 0), -EMFILE);
	assert_int_equal(to.opens, 2);
	assert_int_equal(tl_stats(m).fds, 0);
	to.fail_count = 0;
	assert_int_equal(smmap_cursor_use_region(&c, 2 * (int64_t)G, 0), 1);
	tl_check_cursor(&c, 2 * G, 2);
	assert_int_equal(to.lock_held, 0);
	assert_int_equal(count_fds(), fds0);
	smmap_cursor_dispose(&c);
	smmap_file_free(f);
	smmap_collect(m);
	assert_int_equal(smmap_manager_free(m), 0);
	free(path);
}

/* smmap_file_pread: correct bytes, short at the end, any handle kind. */
static void test_pread(void **state)
{
	const uint64_t size = 3 * G + 77;
	char *path = tl_make_file("file-pread", size, 3);
	smmap_manager *m = new_manager(SMMAP_UNLIMITED, 8, SMMAP_NOATIME);
	struct test_opener to;
	struct smmap_opener op = { test_open, &to };
	unsigned char *buf = malloc(size + 100);
	unsigned fds0;
	smmap_file *fh[3];
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	(void)state;
	assert_non_null(buf);
	assert_true(fd >= 0);
	fds0 = count_fds();
	tl_srand(3);
	opener_init(&to, path, m);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(smmap_file_new_path(&fh[0], m, path, 0), 0);
	assert_int_equal(smmap_file_new_fd(&fh[1], m, fd), 0);
	assert_int_equal(smmap_file_new_opener(&fh[2], m, &op, &st), 0);
	for (unsigned k = 0; k < 3; k++) {
		smmap_file *f = fh[k];

		for (unsigned i = 0; i < 50; i++) {
			uint64_t ofs = tl_rand_range(0, size - 1);
			size_t len = (size_t)tl_rand_range(1, size - ofs);

			memset(buf, 0, len);
			assert_int_equal(smmap_file_pread(f, buf, len, (int64_t)ofs),
					 (ssize_t)len);
			assert_true(tl_check_pattern(buf, len, ofs, 3));
		}
		memset(buf, 0, size + 100);
		assert_int_equal(smmap_file_pread(f, buf, size + 100, 0),
				 (ssize_t)size);
		assert_true(tl_check_pattern(buf, size, 0, 3));
		/* Short at the end of the file; 0 at and past it. */
		assert_int_equal(smmap_file_pread(f, buf, 100, (int64_t)size - 10),
				 10);
		assert_true(tl_check_pattern(buf, 10, size - 10, 3));
		assert_int_equal(smmap_file_pread(f, buf, 100, (int64_t)size), 0);
		assert_int_equal(smmap_file_pread(f, buf, 100, (int64_t)size + 5),
				 0);
		assert_int_equal(smmap_file_pread(f, buf, 0, 0), 0);
		assert_int_equal(smmap_file_pread(f, buf, 4, -1), -EINVAL);
		assert_int_equal(tl_stats(m).fds, 0);
		assert_int_equal(count_fds(), fds0);
	}
	/* No mapping was made for any of it. */
	assert_int_equal(tl_stats(m).mmap_calls, 0);
	assert_int_equal(tl_stats(m).mappings, 0);
	assert_true(to.opens > 0);
	/* The borrowed descriptor is still open. */
	assert_true(fcntl(fd, F_GETFD) >= 0);
	for (unsigned k = 0; k < 3; k++)
		smmap_file_free(fh[k]);
	assert_int_equal(smmap_manager_free(m), 0);
	close(fd);
	free(buf);
	free(path);
}

/* A file that cannot be mapped (a /proc file: size 0 in stat) reads. */
static void test_pread_unmappable(void **state)
{
	static const char proc_path[] = "/proc/self/cmdline";
	smmap_manager *m = new_manager(SMMAP_UNLIMITED, 8, 0);
	unsigned char expect[8192], got[8192];
	ssize_t n, total = 0;
	smmap_file *f;
	smmap_cursor c;
	int fd;

	(void)state;
	/* What read(2) gives. */
	fd = open(proc_path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	while ((n = read(fd, expect + total, sizeof(expect) - (size_t)total)) > 0)
		total += n;
	close(fd);
	assert_true(total > 0);

	assert_int_equal(smmap_file_new_path(&f, m, proc_path, 0), 0);
	assert_int_equal(smmap_file_size(f), 0);
	assert_int_equal(smmap_cursor_init_file(&c, f), 0);
	assert_int_equal(smmap_cursor_use_region(&c, 0, 0), 0); /* no mapping */
	memset(got, 0, sizeof(got));
	n = smmap_file_pread(f, got, sizeof(got), 0);
	assert_int_equal(n, total);
	assert_memory_equal(got, expect, (size_t)total);
	n = smmap_file_pread(f, got, 4, 1);
	assert_int_equal(n, total - 1 < 4 ? total - 1 : 4);
	assert_memory_equal(got, expect + 1, (size_t)n);
	assert_int_equal(tl_stats(m).mmap_calls, 0);
	assert_int_equal(tl_stats(m).fds, 0);
	smmap_cursor_dispose(&c);
	smmap_file_free(f);
	assert_int_equal(smmap_manager_free(m), 0);
}

/* ---- the descriptor budget under concurrency ---- */

enum { NTHREADS = 4, FILE_WINDOWS = 8 };

struct budget {
	smmap_manager *m;
	char *paths[NTHREADS];
	atomic_uint_fast64_t waits_seen;
	unsigned min_iters, max_iters;
};

struct budget_thread {
	struct budget *bg;
	unsigned id;
	unsigned iters;
};

static void check_fds(smmap_manager *m)
{
	struct smmap_stats s;

	smmap_stats_get(&s, m);
	TL_TCHECK(s.fds <= 1);
	TL_TCHECK(s.peak_fds <= 1);
}

static void *budget_main(void *arg)
{
	struct budget_thread *bt = arg;
	struct budget *bg = bt->bg;
	unsigned salt = 40 + bt->id;
	unsigned char buf[64];
	smmap_file *f;
	smmap_cursor c;

	tl_srand(40 + bt->id);
	TL_TCHECK(smmap_file_new_path(&f, bg->m, bg->paths[bt->id], 0) == 0);
	TL_TCHECK(smmap_cursor_init_file(&c, f) == 0);
	for (bt->iters = 0; bt->iters < bg->max_iters; bt->iters++) {
		uint64_t ofs = tl_rand_range(0, FILE_WINDOWS * G - 1);
		struct smmap_stats s;
		int ret, fd;

		if (bt->iters >= bg->min_iters) {
			smmap_stats_get(&s, bg->m);
			if (s.fd_waits > 0)
				break;
		}
		/* Map a window (opens within the budget). */
		do {
			ret = smmap_cursor_use_region(&c, (int64_t)ofs, 0);
		} while (ret == -EAGAIN);
		TL_TCHECK(ret == 1);
		if (ret == 1)
			TL_TCHECK(tl_check_pattern(smmap_cursor_buffer(&c),
						smmap_cursor_size(&c), ofs, salt));
		smmap_cursor_unuse_region(&c);
		check_fds(bg->m);

		/* A descriptor of our own, within the same budget. */
		smmap_fd_acquire(bg->m);
		smmap_stats_get(&s, bg->m);
		TL_TCHECK(s.fds == 1); /* ours is the only one */
		fd = open(bg->paths[bt->id], O_RDONLY | O_CLOEXEC);
		TL_TCHECK(fd >= 0);
		if (fd >= 0) {
			TL_TCHECK(pread(fd, buf, sizeof(buf), (off_t)ofs / 2) ==
			       (ssize_t)sizeof(buf));
			TL_TCHECK(tl_check_pattern(buf, sizeof(buf), ofs / 2, salt));
			close(fd);
		}
		usleep(50); /* hold it a while: others must wait */
		smmap_fd_release(bg->m);
		check_fds(bg->m);

		/* The fallback read takes a slot too. */
		TL_TCHECK(smmap_file_pread(f, buf, sizeof(buf), (int64_t)ofs / 3) ==
		       (ssize_t)sizeof(buf));
		TL_TCHECK(tl_check_pattern(buf, sizeof(buf), ofs / 3, salt));
		check_fds(bg->m);
		if (tl_rand_range(0, 7) == 0)
			smmap_collect(bg->m); /* more mapping, more opening */
	}
	smmap_cursor_dispose(&c);
	smmap_file_free(f);
	return NULL;
}

static void test_fd_budget(void **state)
{
	struct budget bg;
	struct budget_thread bt[NTHREADS];
	pthread_t th[NTHREADS];
	struct smmap_stats s;
	unsigned fds0 = count_fds();
	uint64_t iters = 0;

	(void)state;
	memset(&bg, 0, sizeof(bg));
	/* Few handles: windows are evicted and mapped (opened) again. */
	bg.m = new_manager(NTHREADS, 1, 0);
	bg.min_iters = 200;
	bg.max_iters = 20000;
	assert_int_equal(smmap_max_fds(bg.m), 1);
	for (unsigned i = 0; i < NTHREADS; i++) {
		char name[32];

		snprintf(name, sizeof(name), "file-budget-%u", i);
		bg.paths[i] = tl_make_file(name, FILE_WINDOWS * G, 40 + i);
	}
	atomic_store(&tl_failures, 0);
	for (unsigned i = 0; i < NTHREADS; i++) {
		bt[i].bg = &bg;
		bt[i].id = i;
		assert_int_equal(pthread_create(&th[i], NULL, budget_main, &bt[i]),
				 0);
	}
	for (unsigned i = 0; i < NTHREADS; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		iters += bt[i].iters;
	}
	s = tl_stats(bg.m);
	fprintf(stderr, "# %" PRIu64 " iterations, %" PRIu64 " mmap calls, %"
		PRIu64 " fd waits, peak fds %" PRIu64 "\n", iters, s.mmap_calls,
		s.fd_waits, s.peak_fds);
	assert_int_equal(atomic_load(&tl_failures), 0);
	assert_int_equal(s.peak_fds, 1);
	assert_int_equal(s.fds, 0);
	assert_true(s.fd_waits > 0);
	assert_true(s.mmap_calls > NTHREADS);
	assert_int_equal(count_fds(), fds0);
	/* A slot taken and given back on the main thread. */
	smmap_fd_acquire(bg.m);
	assert_int_equal(tl_stats(bg.m).fds, 1);
	smmap_fd_release(bg.m);
	assert_int_equal(tl_stats(bg.m).fds, 0);
	smmap_collect(bg.m);
	assert_int_equal(smmap_manager_free(bg.m), 0);
	for (unsigned i = 0; i < NTHREADS; i++)
		free(bg.paths[i]);
}

/* A handle freed while cursors use it stays alive for them. */
static void test_free_handle_in_use(void **state)
{
	char *path = tl_make_file("file-free", 4 * G, 5);
	smmap_manager *m = new_manager(SMMAP_UNLIMITED, 8, 0);
	unsigned char buf[100];
	smmap_cursor c, copy;
	smmap_buffer b;
	uint64_t size;
	const char *p;
	smmap_file *f;

	(void)state;
	assert_int_equal(smmap_file_new_path(&f, m, path, 0), 0);
	assert_int_equal(smmap_cursor_init_file(&c, f), 0);
	assert_int_equal(smmap_cursor_use_region(&c, 10, 0), 1);
	smmap_file_free(f); /* the caller's reference */
	smmap_file_free(NULL);
	/* The cursor's reference keeps it alive and usable. */
	tl_check_cursor(&c, 10, 5);
	assert_ptr_equal(smmap_cursor_file(&c), f);
	assert_int_equal(smmap_cursor_file_size(&size, &c), 0);
	assert_int_equal(size, 4 * G);
	assert_int_equal(smmap_cursor_path(&p, &c), 0);
	assert_string_equal(p, path);
	assert_int_equal(smmap_cursor_use_region(&c, 3 * (int64_t)G, 0), 1);
	tl_check_cursor(&c, 3 * G, 5);
	assert_int_equal(smmap_cursor_read(&c, buf, sizeof(buf), (int64_t)G - 50),
			 (ssize_t)sizeof(buf));
	assert_true(tl_check_pattern(buf, sizeof(buf), G - 50, 5));
	assert_int_equal(smmap_file_revalidate(smmap_cursor_file(&c), NULL), 0);
	assert_int_equal(smmap_file_pread(smmap_cursor_file(&c), buf, 10, 7), 10);
	assert_true(tl_check_pattern(buf, 10, 7, 5));
	smmap_buffer_init(&b);
	assert_int_equal(smmap_buffer_begin(&b, &c, 5, SMMAP_TO_END), 0);
	assert_int_equal(smmap_buffer_byte(&b, 0), tl_pattern(5, 5));
	smmap_buffer_end(&b);
	/* A copy holds its own reference. */
	smmap_cursor_init(&copy, m);
	assert_int_equal(smmap_cursor_copy(&copy, &c), 0);
	assert_int_equal(smmap_manager_free(m), -EBUSY);
	smmap_cursor_dispose(&c);
	assert_int_equal(smmap_manager_free(m), -EBUSY);
	assert_int_equal(smmap_cursor_use_region(&copy, 2 * (int64_t)G, 0), 1);
	tl_check_cursor(&copy, 2 * G, 5);
	assert_int_equal(tl_stats(m).files, 1);
	smmap_cursor_dispose(&copy);
	smmap_collect(m);
	assert_int_equal(tl_stats(m).files, 0);
	assert_int_equal(smmap_manager_free(m), 0);
	free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_opener_holds_no_fd),
		cmocka_unit_test(test_opener_errors),
		cmocka_unit_test(test_pread),
		cmocka_unit_test(test_pread_unmappable),
		cmocka_unit_test(test_fd_budget),
		cmocka_unit_test(test_free_handle_in_use),
	};

	G = smmap_granularity();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
