/*
 * test_faults.c - fault injection through the OS seam (os.h): failing
 * open/fstat/mmap, the flush-and-retry rule for resource errors, exact
 * counters and no leaked descriptor or mapping afterwards.
 *
 * Single-threaded: the seam is replaced only while no other thread uses
 * the library, and restored after every test.
 */
#include "testlib.h"

#include "os.h"
#include "smmap.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static uint64_t G;

enum { MAX_TRACKED = 256 };

/* What the seam saw, and what it is told to fail. */
static struct {
	int open_fail, open_errno;   /* fail the next N opens (-1: all) */
	int fstat_fail, fstat_errno;
	int mmap_fail, mmap_errno;
	unsigned opens, open_failures, closes, fstats, mmaps, mmap_ok, munmaps;
	unsigned bad_munmaps;        /* of something not mapped by mmap */
	void *addr[MAX_TRACKED];     /* live mappings */
	size_t len[MAX_TRACKED];
	unsigned live;
} inj;

static bool take_failure(int *count)
{
	if (*count == 0)
		return false;
	if (*count > 0)
		(*count)--;
	return true;
}

static int f_open(const char *path, int flags)
{
	inj.opens++;
	if (take_failure(&inj.open_fail)) {
		inj.open_failures++;
		errno = inj.open_errno;
		return -1;
	}
	return smmap__os_default.open(path, flags);
}

static int f_close(int fd)
{
	inj.closes++;
	return smmap__os_default.close(fd);
}

static int f_fstat(int fd, struct stat *st)
{
	inj.fstats++;
	if (take_failure(&inj.fstat_fail)) {
		errno = inj.fstat_errno;
		return -1;
	}
	return smmap__os_default.fstat(fd, st);
}

static void *f_mmap(void *addr, size_t len, int prot, int flags, int fd,
		    off_t off)
{
	void *p;

	inj.mmaps++;
	if (take_failure(&inj.mmap_fail)) {
		errno = inj.mmap_errno;
		return MAP_FAILED;
	}
	p = smmap__os_default.mmap(addr, len, prot, flags, fd, off);
	if (p != MAP_FAILED) {
		inj.mmap_ok++;
		if (inj.live < MAX_TRACKED) {
			inj.addr[inj.live] = p;
			inj.len[inj.live] = len;
			inj.live++;
		}
	}
	return p;
}

static int f_munmap(void *addr, size_t len)
{
	unsigned i;

	inj.munmaps++;
	for (i = 0; i < inj.live; i++)
		if (inj.addr[i] == addr && inj.len[i] == len)
			break;
	if (i == inj.live) {
		inj.bad_munmaps++;
	} else {
		inj.live--;
		inj.addr[i] = inj.addr[inj.live];
		inj.len[i] = inj.len[inj.live];
	}
	return smmap__os_default.munmap(addr, len);
}

static int seam_setup(void **state)
{
	(void)state;
	memset(&inj, 0, sizeof(inj));
	smmap__os = smmap__os_default;
	smmap__os.open = f_open;
	smmap__os.close = f_close;
	smmap__os.fstat = f_fstat;
	smmap__os.mmap = f_mmap;
	smmap__os.munmap = f_munmap;
	return 0;
}

static int seam_teardown(void **state)
{
	(void)state;
	smmap__os = smmap__os_default;
	return 0;
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

static smmap_manager *new_manager(uint64_t max_handles)
{
	return tl_manager(SMMAP_SLIDING, (struct tl_opts){ .window = G,
						  .max_handles = max_handles });
}

/* Map windows [from, to) with c, then release them (idle regions). */
static void map_idle(smmap_cursor *c, int64_t from, int64_t to)
{
	for (int64_t i = from; i < to; i++)
		assert_int_equal(smmap_cursor_use_region(c, i * (int64_t)G, 0), 1);
	smmap_cursor_unuse_region(c);
}

/*
 * The end of every test: no mapping, descriptor or slot left behind.  The
 * descriptors the library opened through the seam were all closed (opener
 * handles open theirs outside the seam: pass false).
 */
static void finish_(smmap_manager *m, unsigned fds_before, bool seam_opens)
{
	smmap_collect(m);
	assert_int_equal(tl_stats(m).mappings, 0);
	assert_int_equal(tl_stats(m).mapped_bytes, 0);
	assert_int_equal(tl_stats(m).fds, 0);
	assert_int_equal(smmap_manager_free(m), 0);
	assert_int_equal(inj.live, 0);
	assert_int_equal(inj.bad_munmaps, 0);
	assert_int_equal(inj.munmaps, inj.mmap_ok);
	if (seam_opens)
		assert_int_equal(inj.closes, inj.opens - inj.open_failures);
	assert_int_equal(count_fds(), fds_before);
}

static void finish(smmap_manager *m, unsigned fds_before)
{
	finish_(m, fds_before, true);
}

/* mmap fails with ENOMEM once: unused regions are flushed, then it works. */
static void test_mmap_enomem_once(void **state)
{
	static const int errs[] = { ENOMEM, EAGAIN };
	char *path = tl_make_file("flt-mmap1", 8 * G, 1);

	(void)state;
	for (unsigned k = 0; k < 2; k++) {
		unsigned fds0 = count_fds();
		smmap_manager *m = new_manager(SMMAP_UNLIMITED);
		struct smmap_stats a, b;
		unsigned opens, closes, mmaps, munmaps;
		smmap_cursor c;

		assert_int_equal(smmap_cursor_init_path(&c, m, path), 0);
		map_idle(&c, 0, 3);
		a = tl_stats(m);
		opens = inj.opens;
		closes = inj.closes;
		mmaps = inj.mmaps;
		munmaps = inj.munmaps;
		inj.mmap_fail = 1;
		inj.mmap_errno = errs[k];
		assert_int_equal(smmap_cursor_use_region(&c, 3 * (int64_t)G, 0), 1);
		tl_check_cursor(&c, 3 * G, 1);
		b = tl_stats(m);
		assert_int_equal(b.collected, a.collected + 3);
		assert_int_equal(b.map_failures, a.map_failures + 1);
		assert_int_equal(b.mmap_calls, a.mmap_calls + 1);
		assert_int_equal(b.misses, a.misses + 1);
		assert_int_equal(b.evictions, a.evictions);
		assert_int_equal(b.mappings, 1);
		assert_int_equal(b.mapped_bytes, G);
		assert_int_equal(b.open_files, 1);
		assert_int_equal(b.fds, 0);
		assert_int_equal(b.limit_refusals, a.limit_refusals);
		/* Two attempts, each opening and closing once. */
		assert_int_equal(inj.mmaps, mmaps + 2);
		assert_int_equal(inj.opens, opens + 2);
		assert_int_equal(inj.closes, closes + 2);
		assert_int_equal(inj.munmaps, munmaps + 3);
		assert_int_equal(inj.live, 1);
		smmap_cursor_dispose(&c);
		finish(m, fds0);
	}
	free(path);
}

/* mmap fails twice: -ENOMEM, and everything is as before (minus flush). */
static void test_mmap_enomem_twice(void **state)
{
	char *path = tl_make_file("flt-mmap2", 8 * G, 2);
	unsigned fds0 = count_fds();
	smmap_manager *m = new_manager(SMMAP_UNLIMITED);
	struct smmap_stats a, b;
	smmap_cursor pin, c;
	unsigned opens;

	(void)state;
	assert_int_equal(smmap_cursor_init_path(&pin, m, path), 0);
	assert_int_equal(smmap_cursor_init_path(&c, m, path), 0);
	assert_int_equal(smmap_cursor_use_region(&pin, 0, 0), 1);

	/* Nothing idle: exactly as before. */
	a = tl_stats(m);
	opens = inj.opens;
	inj.mmap_fail = 2;
	inj.mmap_errno = ENOMEM;
	assert_int_equal(smmap_cursor_use_region(&c, 5 * (int64_t)G, 0), -ENOMEM);
	assert_false(smmap_cursor_is_valid(&c));
	assert_true(smmap_cursor_is_associated(&c));
	b = tl_stats(m);
	assert_int_equal(b.mappings, a.mappings);
	assert_int_equal(b.mapped_bytes, a.mapped_bytes);
	assert_int_equal(b.open_files, a.open_files);
	assert_int_equal(b.fds, 0);
	assert_int_equal(b.collected, a.collected);
	assert_int_equal(b.map_failures, a.map_failures + 2);
	assert_int_equal(b.mmap_calls, a.mmap_calls);
	assert_int_equal(b.misses, a.misses);
	assert_int_equal(inj.opens, opens + 2);
	assert_int_equal(inj.closes, inj.opens);
	assert_int_equal(inj.live, 1);
	assert_int_equal(count_fds(), fds0);
	tl_check_cursor(&pin, 0, 2);

	/* With idle regions: they are flushed, the pinned one stays. */
	map_idle(&c, 1, 3);
	a = tl_stats(m);
	assert_int_equal(a.mappings, 3);
	inj.mmap_fail = 2;
	assert_int_equal(smmap_cursor_use_region(&c, 5 * (int64_t)G, 0), -ENOMEM);
	b = tl_stats(m);
	assert_int_equal(b.collected, a.collected + 2);
	assert_int_equal(b.mappings, 1);
	assert_int_equal(b.mapped_bytes, G);
	assert_int_equal(b.map_failures, a.map_failures + 2);
	assert_int_equal(b.fds, 0);
	assert_int_equal(inj.closes, inj.opens);
	assert_int_equal(count_fds(), fds0);
	tl_check_cursor(&pin, 0, 2);

	/* The failure left nothing behind: the same call works now. */
	assert_int_equal(smmap_cursor_use_region(&c, 5 * (int64_t)G, 0), 1);
	tl_check_cursor(&c, 5 * G, 2);
	assert_int_equal(tl_stats(m).mappings, 2);
	smmap_cursor_dispose(&pin);
	smmap_cursor_dispose(&c);
	finish(m, fds0);
	free(path);
}

/* open fails with EMFILE/ENFILE: flush and retry; a clean error if it
 * persists. */
static void test_open_emfile(void **state)
{
	static const int errs[] = { EMFILE, ENFILE };
	char *path = tl_make_file("flt-open", 8 * G, 3);

	(void)state;
	for (unsigned k = 0; k < 2; k++) {
		unsigned fds0 = count_fds();
		smmap_manager *m = new_manager(SMMAP_UNLIMITED);
		struct smmap_stats a, b;
		smmap_cursor c, pin;
		unsigned opens;

		assert_int_equal(smmap_cursor_init_path(&c, m, path), 0);
		assert_int_equal(smmap_cursor_init_path(&pin, m, path), 0);
		assert_int_equal(smmap_cursor_use_region(&pin, 7 * (int64_t)G, 0),
				 1);
		map_idle(&c, 0, 2);

		/* Once: recovered. */
		a = tl_stats(m);
		opens = inj.opens;
		inj.open_fail = 1;
		inj.open_errno = errs[k];
		assert_int_equal(smmap_cursor_use_region(&c, 3 * (int64_t)G, 0), 1);
		tl_check_cursor(&c, 3 * G, 3);
		b = tl_stats(m);
		assert_int_equal(b.collected, a.collected + 2);
		assert_int_equal(b.map_failures, a.map_failures + 1);
		assert_int_equal(b.mappings, 2);
		assert_int_equal(inj.opens, opens + 2);
		smmap_cursor_unuse_region(&c);

		/* Persistent: -EMFILE after one flush and one retry. */
		a = tl_stats(m);
		opens = inj.opens;
		inj.open_fail = -1;
		assert_int_equal(smmap_cursor_use_region(&c, 4 * (int64_t)G, 0),
				 -errs[k]);
		inj.open_fail = 0;
		assert_false(smmap_cursor_is_valid(&c));
		b = tl_stats(m);
		assert_int_equal(inj.opens, opens + 2);
		assert_int_equal(b.map_failures, a.map_failures + 2);
		assert_int_equal(b.collected, a.collected + 1);
		assert_int_equal(b.mappings, 1); /* the pinned one */
		assert_int_equal(b.mapped_bytes, G);
		assert_int_equal(b.fds, 0);
		assert_int_equal(b.mmap_calls, a.mmap_calls);
		/* Every descriptor opened was closed. */
		assert_int_equal(inj.closes, inj.opens - inj.open_failures);
		assert_int_equal(count_fds(), fds0);
		tl_check_cursor(&pin, 7 * G, 3);
		/* The descriptor slot was given back: max_fds is 8, but a
		 * leaked slot would show in stats.fds. */
		assert_int_equal(smmap_cursor_use_region(&c, 4 * (int64_t)G, 0), 1);
		tl_check_cursor(&c, 4 * G, 3);
		smmap_cursor_dispose(&c);
		smmap_cursor_dispose(&pin);
		finish(m, fds0);
	}
	free(path);
}

/* Errors that are not about resources are returned without a flush. */
static void test_other_errors_no_flush(void **state)
{
	char *path = tl_make_file("flt-eacces", 8 * G, 4);
	unsigned fds0 = count_fds();
	smmap_manager *m = new_manager(SMMAP_UNLIMITED);
	struct smmap_stats a, b;
	smmap_cursor c;
	unsigned opens, mmaps, fstats;

	(void)state;
	assert_int_equal(smmap_cursor_init_path(&c, m, path), 0);
	map_idle(&c, 0, 3);

	/* open: EACCES. */
	a = tl_stats(m);
	opens = inj.opens;
	inj.open_fail = 1;
	inj.open_errno = EACCES;
	assert_int_equal(smmap_cursor_use_region(&c, 4 * (int64_t)G, 0), -EACCES);
	b = tl_stats(m);
	assert_int_equal(inj.opens, opens + 1); /* no retry */
	assert_int_equal(b.collected, a.collected);
	assert_int_equal(b.mappings, 3);        /* nothing flushed */
	assert_int_equal(b.mapped_bytes, 3 * G);
	assert_int_equal(b.map_failures, a.map_failures + 1);
	assert_int_equal(b.fds, 0);

	/* fstat: EIO. */
	fstats = inj.fstats;
	inj.fstat_fail = 1;
	inj.fstat_errno = EIO;
	assert_int_equal(smmap_cursor_use_region(&c, 4 * (int64_t)G, 0), -EIO);
	b = tl_stats(m);
	assert_int_equal(inj.fstats, fstats + 1);
	assert_int_equal(b.collected, a.collected);
	assert_int_equal(b.mappings, 3);
	assert_int_equal(b.map_failures, a.map_failures + 2);

	/* mmap: EACCES and ENODEV. */
	mmaps = inj.mmaps;
	inj.mmap_fail = 1;
	inj.mmap_errno = EACCES;
	assert_int_equal(smmap_cursor_use_region(&c, 4 * (int64_t)G, 0), -EACCES);
	inj.mmap_fail = 1;
	inj.mmap_errno = ENODEV;
	assert_int_equal(smmap_cursor_use_region(&c, 4 * (int64_t)G, 0), -ENODEV);
	b = tl_stats(m);
	assert_int_equal(inj.mmaps, mmaps + 2);
	assert_int_equal(b.collected, a.collected);
	assert_int_equal(b.mappings, 3);
	assert_int_equal(b.map_failures, a.map_failures + 4);
	assert_int_equal(b.fds, 0);
	assert_int_equal(inj.open_failures, 1);
	assert_int_equal(inj.closes, inj.opens - inj.open_failures);
	assert_int_equal(count_fds(), fds0);

	/* All idle regions are still there: hits. */
	for (int64_t i = 0; i < 3; i++) {
		assert_int_equal(smmap_cursor_use_region(&c, i * (int64_t)G, 0), 1);
		tl_check_cursor(&c, (uint64_t)i * G, 4);
	}
	assert_int_equal(tl_stats(m).hits, a.hits + 3);
	assert_int_equal(tl_stats(m).misses, a.misses);
	smmap_cursor_dispose(&c);
	finish(m, fds0);
	free(path);
}

/* A borrowed descriptor is never closed, even when mapping fails. */
static void test_fd_handle_failure(void **state)
{
	char *path = tl_make_file("flt-fd", 4 * G, 5);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	unsigned fds0;
	smmap_manager *m = new_manager(SMMAP_UNLIMITED);
	smmap_cursor c;

	(void)state;
	assert_true(fd >= 0);
	fds0 = count_fds();
	assert_int_equal(smmap_cursor_init_fd(&c, m, fd), 0);
	inj.mmap_fail = 2;
	inj.mmap_errno = ENOMEM;
	assert_int_equal(smmap_cursor_use_region(&c, 0, 0), -ENOMEM);
	assert_int_equal(inj.opens, 0);
	assert_int_equal(inj.closes, 0);
	assert_true(fcntl(fd, F_GETFD) >= 0);
	assert_int_equal(tl_stats(m).fds, 0);
	assert_int_equal(smmap_cursor_use_region(&c, 0, 0), 1);
	tl_check_cursor(&c, 0, 5);
	assert_int_equal(inj.closes, 0);
	smmap_cursor_dispose(&c);
	finish(m, fds0);
	assert_true(fcntl(fd, F_GETFD) >= 0);
	close(fd);
	free(path);
}

struct counting_opener {
	const char *path;
	unsigned opens;
};

static int counting_open(void *ctx)
{
	struct counting_opener *co = ctx;
	int fd = open(co->path, O_RDONLY | O_CLOEXEC);

	co->opens++;
	return fd >= 0 ? fd : -errno;
}

/* An opener's descriptor is closed (through the seam) on failure too. */
static void test_opener_failure_closes(void **state)
{
	char *path = tl_make_file("flt-opener", 4 * G, 6);
	unsigned fds0 = count_fds();
	smmap_manager *m = new_manager(SMMAP_UNLIMITED);
	struct counting_opener co = { path, 0 };
	struct smmap_opener op = { counting_open, &co };
	struct stat st;
	smmap_file *f;
	smmap_cursor c;

	(void)state;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(smmap_file_new_opener(&f, m, &op, &st), 0);
	assert_int_equal(smmap_cursor_init_file(&c, f), 0);
	inj.mmap_fail = 2;
	inj.mmap_errno = ENOMEM;
	assert_int_equal(smmap_cursor_use_region(&c, 0, 0), -ENOMEM);
	assert_int_equal(co.opens, 2);
	assert_int_equal(inj.closes, 2);
	assert_int_equal(count_fds(), fds0);
	inj.mmap_fail = 1;
	inj.mmap_errno = EACCES;
	assert_int_equal(smmap_cursor_use_region(&c, 0, 0), -EACCES);
	assert_int_equal(co.opens, 3);
	assert_int_equal(inj.closes, 3);
	assert_int_equal(count_fds(), fds0);
	assert_int_equal(smmap_cursor_use_region(&c, 0, 0), 1);
	tl_check_cursor(&c, 0, 6);
	assert_int_equal(inj.closes, co.opens);
	assert_int_equal(tl_stats(m).fds, 0);
	smmap_cursor_dispose(&c);
	smmap_file_free(f);
	finish_(m, fds0, false);
	free(path);
}

/*
 * munmap is called exactly once per mapping, whatever ended it: eviction,
 * collect, retirement, a failed attempt's flush or the manager's free.
 */
static void test_munmap_once_per_mapping(void **state)
{
	enum { NC = 3, NWIN = 10 };
	char *path = tl_make_file("flt-munmap", NWIN * G, 7);
	char *path2 = tl_make_file("flt-munmap2", 3 * G + 5, 8);
	unsigned fds0 = count_fds();
	smmap_manager *m = new_manager(4);
	smmap_cursor c[NC];
	smmap_file *f;

	(void)state;
	tl_srand(7);
	assert_int_equal(smmap_file_new_path(&f, m, path2, 0), 0);
	for (int i = 0; i < NC; i++)
		assert_int_equal(smmap_cursor_init_path(&c[i], m, path), 0);
	for (unsigned step = 0; step < 2000; step++) {
		unsigned i = (unsigned)tl_rand_range(0, NC - 1);
		uint64_t op = tl_rand_range(0, 99);
		int ret;

		if (op < 70) {
			uint64_t ofs = tl_rand_range(0, NWIN * G - 1);

			if (tl_rand_range(0, 9) == 0) {
				inj.mmap_fail = (int)tl_rand_range(1, 2);
				inj.mmap_errno = ENOMEM;
			}
			ret = smmap_cursor_use_region(&c[i], (int64_t)ofs, 0);
			inj.mmap_fail = 0;
			if (ret == 1)
				tl_check_cursor(&c[i], ofs, 7);
			else
				assert_true(ret == -ENOMEM || ret == -EAGAIN);
		} else if (op < 85) {
			smmap_cursor_unuse_region(&c[i]);
		} else if (op < 90) {
			smmap_collect(m);
		} else {
			/* The other file: map, then retire by a fake size. */
			struct stat st;
			smmap_cursor t;

			assert_int_equal(smmap_cursor_init_file(&t, f), 0);
			ret = smmap_cursor_use_region(&t, 3 * (int64_t)G, 0);
			assert_true(ret == 1 || ret == -EAGAIN);
			assert_int_equal(stat(path2, &st), 0);
			st.st_size = (off_t)G;
			assert_int_equal(smmap_file_revalidate(f, &st), 1);
			assert_int_equal(stat(path2, &st), 0);
			assert_int_equal(smmap_file_revalidate(f, &st), 1);
			smmap_cursor_dispose(&t);
		}
		/* The seam and the counters agree at every step. */
		assert_int_equal(inj.live, tl_stats(m).mappings);
		assert_int_equal(inj.bad_munmaps, 0);
		assert_int_equal(inj.mmap_ok - inj.munmaps, inj.live);
		assert_int_equal(inj.closes, inj.opens);
		assert_true(tl_stats(m).mappings <= 4);
	}
	assert_true(tl_stats(m).evictions > 0);
	assert_true(tl_stats(m).retired > 0);
	assert_true(tl_stats(m).collected > 0);
	for (int i = 0; i < NC; i++)
		smmap_cursor_dispose(&c[i]);
	smmap_file_free(f);
	/* Free with idle regions still mapped: the manager unmaps them. */
	assert_true(inj.live > 0);
	assert_int_equal(smmap_manager_free(m), 0);
	assert_int_equal(inj.live, 0);
	assert_int_equal(inj.bad_munmaps, 0);
	assert_int_equal(inj.munmaps, inj.mmap_ok);
	assert_int_equal(count_fds(), fds0);
	free(path);
	free(path2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_mmap_enomem_once,
						seam_setup, seam_teardown),
		cmocka_unit_test_setup_teardown(test_mmap_enomem_twice,
						seam_setup, seam_teardown),
		cmocka_unit_test_setup_teardown(test_open_emfile, seam_setup,
						seam_teardown),
		cmocka_unit_test_setup_teardown(test_other_errors_no_flush,
						seam_setup, seam_teardown),
		cmocka_unit_test_setup_teardown(test_fd_handle_failure,
						seam_setup, seam_teardown),
		cmocka_unit_test_setup_teardown(test_opener_failure_closes,
						seam_setup, seam_teardown),
		cmocka_unit_test_setup_teardown(test_munmap_once_per_mapping,
						seam_setup, seam_teardown),
	};

	G = smmap_granularity();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
