/*
 * test_threads.c - stress: many threads, many files, small limits.
 *
 * Eight worker threads use their own cursors and buffers on five files of
 * different sizes and salts, at random offsets and lengths (many spanning
 * several windows), comparing every byte with tl_pattern().  The limits are
 * small and hard, so eviction happens all the time and -EAGAIN is common:
 * a worker that gets it drops its own pins and retries.  After every call
 * the limits are checked.  A collector thread calls smmap_collect() and a
 * revalidator thread revalidates the files (touching one of them).
 */
#include "testlib.h"

#include "smmap.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum {
	NWORKERS = 8,
	NFILES = 5,
	TOUCHED = 4,     /* the file the revalidator touches */
	MAX_HANDLES = 6,
	MAX_FDS = 2,
	MAX_RETRIES = 1000000,
};

static uint64_t G, W, MAX_MAPPED;

struct world {
	smmap_manager *m;
	char *paths[NFILES];
	uint64_t sizes[NFILES];
	unsigned salts[NFILES];
	smmap_file *fh[NFILES]; /* shared path handles */
	smmap_file *fdh;         /* a shared fd handle on file 1 */
	int fd;
	unsigned ops_per_worker;
	atomic_int workers_left;
	/* Totals. */
	atomic_uint_fast64_t eagain, partial, ops, bytes, collected,
		revalidations, changes;
};

struct worker {
	struct world *w;
	unsigned id;
	smmap_cursor cs[NFILES]; /* one per file */
	smmap_cursor cb;         /* the buffer's cursor */
	smmap_buffer b;
	unsigned char *dst;
	uint64_t eagain;
};

static void check_limits(smmap_manager *m)
{
	struct smmap_stats s;

	smmap_stats_get(&s, m);
	TL_TCHECK(s.mappings <= MAX_HANDLES);
	TL_TCHECK(s.mapped_bytes <= MAX_MAPPED);
	TL_TCHECK(s.fds <= MAX_FDS);
	TL_TCHECK(s.peak_mappings <= MAX_HANDLES);
	TL_TCHECK(s.peak_mapped_bytes <= MAX_MAPPED);
	TL_TCHECK(s.peak_fds <= MAX_FDS);
	TL_TCHECK(s.overcommits == 0);
}

/* -EAGAIN: let go of everything this worker pins, then retry. */
static void back_off(struct worker *wk)
{
	for (unsigned i = 0; i < NFILES; i++)
		smmap_cursor_unuse_region(&wk->cs[i]);
	smmap_buffer_end(&wk->b);
	wk->eagain++;
	sched_yield();
}

/* (Re)associate cursor i: shared handle, fd handle or a fresh path one. */
static void cursor_setup(struct worker *wk, unsigned i)
{
	struct world *w = wk->w;

	smmap_cursor_dispose(&wk->cs[i]);
	if (i == 1 && (wk->id & 1)) {
		TL_TCHECK(smmap_cursor_init_file(&wk->cs[i], w->fdh) == 0);
	} else if (i == 0 && wk->id % 3 == 0) {
		/* A handle of its own, same identity as the shared one. */
		TL_TCHECK(smmap_cursor_init_path(&wk->cs[i], w->m, w->paths[i]) ==
		       0);
	} else {
		TL_TCHECK(smmap_cursor_init_file(&wk->cs[i], w->fh[i]) == 0);
	}
}

static uint64_t rand_offset(const struct world *w, unsigned fi)
{
	if (tl_rand_range(0, 19) == 0) /* sometimes at or past the end */
		return w->sizes[fi] + tl_rand_range(0, W);
	return tl_rand_range(0, w->sizes[fi] - 1);
}

static void op_use_region(struct worker *wk, unsigned fi)
{
	struct world *w = wk->w;
	smmap_cursor *c = &wk->cs[fi];
	uint64_t ofs = rand_offset(w, fi), size = w->sizes[fi];
	size_t req = tl_rand_range(0, 1) ? 0 : (size_t)tl_rand_range(1, 2 * W);
	int ret;

	for (unsigned tries = 0;; tries++) {
		ret = smmap_cursor_use_region(c, (int64_t)ofs, req);
		check_limits(w->m);
		if (ret != -EAGAIN || tries >= MAX_RETRIES)
			break;
		back_off(wk);
	}
	if (ofs >= size) {
		TL_TCHECK(ret == 0);
		TL_TCHECK(!smmap_cursor_is_valid(c));
		return;
	}
	TL_TCHECK(ret == 1);
	if (ret != 1)
		return;
	TL_TCHECK(smmap_cursor_ofs_begin(c) == ofs);
	TL_TCHECK(smmap_cursor_size(c) > 0);
	TL_TCHECK(req == 0 || smmap_cursor_size(c) <= req);
	TL_TCHECK(smmap_cursor_ofs_end(c) <= size);
	/* Never past the window containing ofs. */
	TL_TCHECK(smmap_cursor_ofs_end(c) <= (ofs / W + 1) * W);
	TL_TCHECK(tl_check_pattern(smmap_cursor_buffer(c), smmap_cursor_size(c),
				ofs, w->salts[fi]));
	atomic_fetch_add(&w->bytes, smmap_cursor_size(c));
}

static void op_read(struct worker *wk, unsigned fi)
{
	struct world *w = wk->w;
	uint64_t ofs = rand_offset(w, fi), size = w->sizes[fi];
	size_t len = (size_t)tl_rand_range(1, 3 * W);
	size_t want = ofs >= size ? 0 : (size - ofs < len ? (size_t)(size - ofs)
							   : len);
	size_t done = 0;
	unsigned tries = 0;

	memset(wk->dst, 0xee, len);
	for (;;) {
		ssize_t n = smmap_cursor_read(&wk->cs[fi], wk->dst + done,
					      len - done,
					      (int64_t)(ofs + done));

		check_limits(w->m);
		if (n == -EAGAIN) {
			if (++tries > MAX_RETRIES)
				break;
			back_off(wk);
			continue;
		}
		TL_TCHECK(n >= 0);
		if (n < 0)
			break;
		done += (size_t)n;
		if (done >= want)
			break;
		/* Short before the end: a limit stopped it midway. */
		TL_TCHECK(n > 0);
		if (n == 0)
			break;
		atomic_fetch_add(&w->partial, 1);
		back_off(wk);
	}
	TL_TCHECK(done == want);
	TL_TCHECK(tl_check_pattern(wk->dst, done, ofs, w->salts[fi]));
	atomic_fetch_add(&w->bytes, done);
}

/* smmap_buffer_begin(), retried (dropping all pins) on -EAGAIN. */
static int begin_retry(struct worker *wk, smmap_cursor *c, uint64_t ofs,
		       uint64_t req)
{
	for (unsigned tries = 0;; tries++) {
		int ret = smmap_buffer_begin(&wk->b, c, (int64_t)ofs, req);

		check_limits(wk->w->m);
		if (ret != -EAGAIN || tries >= MAX_RETRIES)
			return ret;
		back_off(wk);
	}
}

static void op_buffer(struct worker *wk, unsigned fi)
{
	struct world *w = wk->w;
	uint64_t size = w->sizes[fi], ofs = tl_rand_range(0, size - 1);
	uint64_t req = tl_rand_range(0, 1) ? SMMAP_TO_END
					   : tl_rand_range(1, 3 * W);
	uint64_t len, want = size - ofs < req ? size - ofs : req;
	/* Either the buffer's own cursor or the file's cursor. */
	smmap_cursor *c = tl_rand_range(0, 1) ? &wk->cb : &wk->cs[fi];
	int ret;

	if (c == &wk->cb) {
		smmap_cursor_dispose(&wk->cb);
		TL_TCHECK(smmap_cursor_init_file(&wk->cb, w->fh[fi]) == 0);
	}
	ret = begin_retry(wk, c, ofs, req);
	TL_TCHECK(ret == 0);
	if (ret != 0)
		return;
	len = smmap_buffer_len(&wk->b);
	TL_TCHECK(len == want);
	for (int k = 0; k < 3 && len > 0; k++) {
		uint64_t s = tl_rand_range(0, len - 1);
		uint64_t e = tl_rand_range(s, len < s + 3 * W ? len : s + 3 * W);
		unsigned tries = 0;

		if (tl_rand_range(0, 2) == 0) {
			int byte;

			for (;;) {
				byte = smmap_buffer_byte(&wk->b, (int64_t)s);
				check_limits(w->m);
				if (byte != -EAGAIN || ++tries > MAX_RETRIES)
					break;
				back_off(wk); /* ends the buffer */
				if (begin_retry(wk, c, ofs, req) != 0)
					break;
			}
			TL_TCHECK(byte == tl_pattern(ofs + s, w->salts[fi]));
			continue;
		}
		memset(wk->dst, 0xee, (size_t)(e - s));
		for (;;) {
			ssize_t n = smmap_buffer_copy(&wk->b, wk->dst, (int64_t)s,
						      (int64_t)e);

			check_limits(w->m);
			if (n >= 0 && (uint64_t)n < e - s) {
				/* A limit stopped it midway: the copied part
				 * must be right; then retry the range. */
				TL_TCHECK(n > 0);
				TL_TCHECK(tl_check_pattern(wk->dst, (size_t)n,
							ofs + s, w->salts[fi]));
				atomic_fetch_add(&w->partial, 1);
				n = -EAGAIN;
			}
			if (n != -EAGAIN || ++tries > MAX_RETRIES) {
				TL_TCHECK(n == (ssize_t)(e - s));
				if (n > 0) {
					TL_TCHECK(tl_check_pattern(wk->dst,
								(size_t)n,
								ofs + s,
								w->salts[fi]));
					atomic_fetch_add(&w->bytes,
							 (uint64_t)n);
				}
				break;
			}
			back_off(wk);
			if (begin_retry(wk, c, ofs, req) != 0) {
				TL_TCHECK(!"begin failed");
				break;
			}
		}
	}
	smmap_buffer_end(&wk->b);
}

static void *worker_main(void *arg)
{
	struct worker *wk = arg;
	struct world *w = wk->w;

	tl_srand(1000 + wk->id);
	for (unsigned i = 0; i < NFILES; i++) {
		smmap_cursor_init(&wk->cs[i], w->m);
		cursor_setup(wk, i);
	}
	smmap_cursor_init(&wk->cb, w->m);
	smmap_buffer_init(&wk->b);
	for (unsigned op = 0; op < w->ops_per_worker; op++) {
		unsigned fi = (unsigned)tl_rand_range(0, NFILES - 1);
		uint64_t kind = tl_rand_range(0, 99);

		if (kind < 35)
			op_use_region(wk, fi);
		else if (kind < 65)
			op_read(wk, fi);
		else if (kind < 85)
			op_buffer(wk, fi);
		else if (kind < 95)
			smmap_cursor_unuse_region(&wk->cs[fi]);
		else
			cursor_setup(wk, fi);
		check_limits(w->m);
		atomic_fetch_add(&w->ops, 1);
	}
	smmap_buffer_end(&wk->b);
	for (unsigned i = 0; i < NFILES; i++)
		smmap_cursor_dispose(&wk->cs[i]);
	smmap_cursor_dispose(&wk->cb);
	atomic_fetch_add(&w->eagain, wk->eagain);
	atomic_fetch_sub(&w->workers_left, 1);
	return NULL;
}

static void *collector_main(void *arg)
{
	struct world *w = arg;

	while (atomic_load(&w->workers_left) > 0) {
		atomic_fetch_add(&w->collected, smmap_collect(w->m));
		check_limits(w->m);
		usleep(300);
	}
	return NULL;
}

static void *revalidator_main(void *arg)
{
	struct world *w = arg;
	long sec = 1000000000;

	while (atomic_load(&w->workers_left) > 0) {
		struct timespec ts[2];

		/* Untouched files: unchanged. */
		for (unsigned i = 0; i < NFILES; i++) {
			if (i != TOUCHED)
				TL_TCHECK(smmap_file_revalidate(w->fh[i], NULL) == 0);
		}
		TL_TCHECK(smmap_file_revalidate(w->fdh, NULL) == 0);
		/* The touched file: new times, same size. */
		sec++;
		ts[0].tv_sec = ts[1].tv_sec = sec;
		ts[0].tv_nsec = ts[1].tv_nsec = 0;
		TL_TCHECK(utimensat(AT_FDCWD, w->paths[TOUCHED], ts, 0) == 0);
		TL_TCHECK(smmap_file_revalidate(w->fh[TOUCHED], NULL) == 1);
		TL_TCHECK(smmap_file_revalidate(w->fh[TOUCHED], NULL) == 0);
		TL_TCHECK(smmap_file_size(w->fh[TOUCHED]) == w->sizes[TOUCHED]);
		atomic_fetch_add(&w->revalidations, 1);
		atomic_fetch_add(&w->changes, 1);
		check_limits(w->m);
		usleep(1000);
	}
	return NULL;
}

static void test_stress(void **state)
{
	struct world w;
	struct worker *wk = calloc(NWORKERS, sizeof(*wk));
	pthread_t th[NWORKERS], coll, reval;
	smmap_options o;
	struct smmap_stats s;
	struct timespec t0, t1;

	(void)state;
	assert_non_null(wk);
	memset(&w, 0, sizeof(w));
	w.sizes[0] = 8 * W;           /* a multiple of the window */
	w.sizes[1] = 3 * W + 123;     /* not a multiple of anything */
	w.sizes[2] = W / 2 + 17;      /* smaller than one window */
	w.sizes[3] = 5 * W + G;       /* pages, not windows */
	w.sizes[TOUCHED] = 2 * W + 5;
	for (unsigned i = 0; i < NFILES; i++) {
		char name[32];

		w.salts[i] = 11 * (i + 1);
		snprintf(name, sizeof(name), "thr-%u", i);
		w.paths[i] = tl_make_file(name, w.sizes[i], w.salts[i]);
	}
	w.ops_per_worker = tl_slow_variant() ? 2000 : 10000;
	fprintf(stderr, "# %d workers x %u operations\n", NWORKERS,
		w.ops_per_worker);

	smmap_options_init(&o, SMMAP_SLIDING);
	o.window_size = W;
	o.max_handles = MAX_HANDLES;
	o.max_mapped = MAX_MAPPED;
	o.max_fds = MAX_FDS;
	o.flags = SMMAP_HARD_MEMORY_LIMIT;
	assert_int_equal(smmap_manager_new(&w.m, &o), 0);
	for (unsigned i = 0; i < NFILES; i++)
		assert_int_equal(smmap_file_new_path(&w.fh[i], w.m, w.paths[i], 0),
				 0);
	w.fd = open(w.paths[1], O_RDONLY | O_CLOEXEC);
	assert_true(w.fd >= 0);
	assert_int_equal(smmap_file_new_fd(&w.fdh, w.m, w.fd), 0);

	atomic_store(&tl_failures, 0);
	atomic_store(&w.workers_left, NWORKERS);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (unsigned i = 0; i < NWORKERS; i++) {
		wk[i].w = &w;
		wk[i].id = i;
		wk[i].dst = malloc(3 * W + 1);
		assert_non_null(wk[i].dst);
		assert_int_equal(pthread_create(&th[i], NULL, worker_main, &wk[i]),
				 0);
	}
	assert_int_equal(pthread_create(&coll, NULL, collector_main, &w), 0);
	assert_int_equal(pthread_create(&reval, NULL, revalidator_main, &w), 0);
	for (unsigned i = 0; i < NWORKERS; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	assert_int_equal(pthread_join(coll, NULL), 0);
	assert_int_equal(pthread_join(reval, NULL), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);

	smmap_stats_get(&s, w.m);
	fprintf(stderr,
		"# %.2f s: %" PRIu64 " ops, %" PRIu64 " bytes compared, %" PRIu64
		" -EAGAIN retried, %" PRIu64 " partial copies, %" PRIu64
		" collected by the collector, %" PRIu64 " revalidation rounds\n",
		(double)(t1.tv_sec - t0.tv_sec) +
			(double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
		(uint64_t)w.ops, (uint64_t)w.bytes, (uint64_t)w.eagain,
		(uint64_t)w.partial, (uint64_t)w.collected,
		(uint64_t)w.revalidations);
	fprintf(stderr,
		"# stats: hits %" PRIu64 " misses %" PRIu64 " evictions %" PRIu64
		" collected %" PRIu64 " refusals %" PRIu64 " fd_waits %" PRIu64
		" peak mappings %" PRIu64 " peak bytes %" PRIu64
		" peak fds %" PRIu64 "\n",
		s.hits, s.misses, s.evictions, s.collected, s.limit_refusals,
		s.fd_waits, s.peak_mappings, s.peak_mapped_bytes, s.peak_fds);
	assert_int_equal(atomic_load(&tl_failures), 0);
	assert_int_equal(w.ops, (uint64_t)NWORKERS * w.ops_per_worker);
	assert_true(s.hits > 0);
	assert_true(s.misses > 0);
	assert_true(s.evictions > 0);
	assert_true(w.revalidations > 0);
	assert_true(s.collected >= w.collected);
	/* Every -EAGAIN seen was a refusal by a limit. */
	assert_true(s.limit_refusals >= w.eagain);
	assert_true(s.peak_mappings <= MAX_HANDLES);
	assert_true(s.peak_mapped_bytes <= MAX_MAPPED);
	assert_true(s.peak_fds <= MAX_FDS);
	assert_int_equal(s.map_failures, 0);
	assert_int_equal(s.sigbus_caught, 0);

	/* Nothing pinned any more: everything can be collected. */
	for (unsigned i = 0; i < NFILES; i++)
		smmap_file_free(w.fh[i]);
	smmap_file_free(w.fdh);
	smmap_collect(w.m);
	smmap_stats_get(&s, w.m);
	assert_int_equal(s.mappings, 0);
	assert_int_equal(s.mapped_bytes, 0);
	assert_int_equal(s.open_files, 0);
	assert_int_equal(s.files, 0);
	assert_int_equal(s.fds, 0);
	assert_int_equal(smmap_manager_free(w.m), 0);
	close(w.fd);
	for (unsigned i = 0; i < NWORKERS; i++)
		free(wk[i].dst);
	for (unsigned i = 0; i < NFILES; i++)
		free(w.paths[i]);
	free(wk);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stress),
	};

	G = smmap_granularity();
	W = 4 * G;
	MAX_MAPPED = (MAX_HANDLES - 1) * W; /* both limits bind */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
