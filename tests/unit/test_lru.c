/*
 * test_lru.c - true LRU eviction (smmap bugs B1 and B22 fixed).
 *
 * smmap 5.0.1 evicts the first unused region in insertion/offset order (B1)
 * and releases a cursor's old region before mapping its new one, so the
 * region just released is often the one evicted (B22).  libsmmap keeps an
 * LRU list of unpinned regions (head = released longest ago) and evicts
 * from its head.
 *
 * How order is observed without disturbing it: a probe cursor visits the
 * regions expected to be mapped, in their expected LRU order.  Each visit
 * must be a hit (hits + 1, misses and evictions unchanged); visiting them
 * head first re-appends each to the tail in the same relative order, so the
 * LRU order is preserved for the next step.
 */
#include "testlib.h"

#include "smmap.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static uint64_t G; /* page size = window size in these tests */

/* One window of one file. */
struct slot {
	smmap_file *f;
	int64_t ofs;
	unsigned salt;
};

static smmap_manager *new_manager(enum smmap_policy policy, uint64_t window,
				  uint64_t max_handles, uint64_t max_mapped,
				  unsigned flags)
{
	return tl_manager(policy, (struct tl_opts){ .window = window,
						  .max_handles = max_handles,
						  .max_mapped = max_mapped,
						  .flags = flags });
}

/* Point `c` (re-associated with the slot's file) at the slot's window. */
static int use_slot(smmap_cursor *c, smmap_manager *m, const struct slot *s)
{
	if (smmap_cursor_file(c) != s->f) {
		smmap_cursor_dispose(c);
		smmap_cursor_init(c, m);
		assert_int_equal(smmap_cursor_init_file(c, s->f), 0);
	}
	return smmap_cursor_use_region(c, s->ofs, 0);
}

static void check_cursor_bytes(const smmap_cursor *c, const struct slot *s)
{
	assert_true(smmap_cursor_is_valid(c));
	assert_int_equal(smmap_cursor_ofs_begin(c), (uint64_t)s->ofs);
	assert_true(smmap_cursor_size(c) > 0);
	assert_true(tl_check_pattern(smmap_cursor_buffer(c),
				     smmap_cursor_size(c), (uint64_t)s->ofs,
				     s->salt));
}

/* Map slot s with cursor c: must be a miss with `evict` evictions. */
static void expect_miss(smmap_manager *m, smmap_cursor *c,
			const struct slot *s, unsigned evict)
{
	struct smmap_stats a = tl_stats(m), b;

	assert_int_equal(use_slot(c, m, s), 1);
	b = tl_stats(m);
	assert_int_equal(b.misses, a.misses + 1);
	assert_int_equal(b.hits, a.hits);
	assert_int_equal(b.evictions, a.evictions + evict);
	check_cursor_bytes(c, s);
}

/* Point c at s: must be a hit (already mapped), no eviction. */
static void expect_hit(smmap_manager *m, smmap_cursor *c,
		       const struct slot *s)
{
	struct smmap_stats a = tl_stats(m), b;

	assert_int_equal(use_slot(c, m, s), 1);
	b = tl_stats(m);
	assert_int_equal(b.hits, a.hits + 1);
	assert_int_equal(b.misses, a.misses);
	assert_int_equal(b.evictions, a.evictions);
	check_cursor_bytes(c, s);
}

/*
 * The unpinned regions must be exactly `lru` (head first): probe each in
 * that order (hits, order preserved), and the mapping count must equal
 * `pinned` + n.
 */
static void expect_lru(smmap_manager *m, const struct slot *const *lru,
		       size_t n, uint64_t pinned)
{
	smmap_cursor p;

	assert_int_equal(tl_stats(m).mappings, pinned + n);
	smmap_cursor_init(&p, m);
	for (size_t i = 0; i < n; i++)
		expect_hit(m, &p, lru[i]);
	smmap_cursor_dispose(&p);
	assert_int_equal(tl_stats(m).mappings, pinned + n);
}

/*
 * Map the N slots in `maps` with N cursors, release them in the order
 * `perm`, then map N new slots (`news`, kept pinned) one by one: the k-th
 * new mapping must evict exactly the k-th released region, checked after
 * every step.
 */
static void run_release_order(smmap_manager *m, const struct slot *maps,
			      const struct slot *news, const unsigned *perm,
			      size_t n, bool soft_memory)
{
	smmap_cursor *c = calloc(n, sizeof(*c));
	smmap_cursor *nc = calloc(n, sizeof(*nc));
	const struct slot **lru = calloc(n, sizeof(*lru));
	struct smmap_stats s0 = tl_stats(m);

	assert_non_null(c);
	assert_non_null(nc);
	assert_non_null(lru);
	for (size_t i = 0; i < n; i++) {
		smmap_cursor_init(&c[i], m);
		smmap_cursor_init(&nc[i], m);
		expect_miss(m, &c[i], &maps[i], 0);
	}
	assert_int_equal(tl_stats(m).mappings, n);
	for (size_t i = 0; i < n; i++) {
		smmap_cursor_unuse_region(&c[perm[i]]);
		assert_false(smmap_cursor_is_valid(&c[perm[i]]));
		lru[i] = &maps[perm[i]];
	}
	expect_lru(m, lru, n, 0);
	for (size_t k = 0; k < n; k++) {
		/* The region released longest ago goes first. */
		expect_miss(m, &nc[k], &news[k], 1);
		expect_lru(m, lru + k + 1, n - k - 1, k + 1);
	}
	assert_int_equal(tl_stats(m).evictions, s0.evictions + n);
	/* Eviction made the room: never more than n mappings at once. */
	assert_int_equal(tl_stats(m).peak_mappings, n);
	/*
	 * Every old region is gone and all mappings are pinned: using an old
	 * window again is no hit.  A hard limit refuses it; the soft memory
	 * limit maps it anyway (an overcommit).
	 */
	for (size_t i = 0; i < n; i++) {
		struct smmap_stats a = tl_stats(m), b;

		if (!soft_memory) {
			assert_int_equal(use_slot(&c[i], m, &maps[i]), -EAGAIN);
			assert_false(smmap_cursor_is_valid(&c[i]));
			b = tl_stats(m);
			assert_int_equal(b.mappings, n);
			assert_int_equal(b.misses, a.misses);
		} else {
			assert_int_equal(use_slot(&c[i], m, &maps[i]), 1);
			check_cursor_bytes(&c[i], &maps[i]);
			b = tl_stats(m);
			assert_int_equal(b.mappings, n + i + 1);
			assert_int_equal(b.misses, a.misses + 1);
			assert_int_equal(b.overcommits, a.overcommits + 1);
		}
		assert_int_equal(b.hits, a.hits);
		assert_int_equal(b.evictions, a.evictions);
	}
	for (size_t i = 0; i < n; i++) {
		smmap_cursor_dispose(&c[i]);
		smmap_cursor_dispose(&nc[i]);
	}
	free(c);
	free(nc);
	free(lru);
}

/* B1: the release order decides, not the mapping or offset order. */
static void test_release_order_decides(void **state)
{
	static const unsigned perms[][4] = {
		{ 3, 1, 0, 2 }, /* smmap would evict window 0 first */
		{ 3, 2, 1, 0 }, /* reverse of the mapping order */
		{ 0, 1, 2, 3 },
		{ 1, 3, 2, 0 },
	};
	char *path = tl_make_file("lru-order", 8 * G, 3);
	struct slot maps[4], news[4];

	(void)state;
	for (size_t p = 0; p < sizeof(perms) / sizeof(perms[0]); p++) {
		smmap_manager *m = new_manager(SMMAP_SLIDING, G, 4,
					       SMMAP_UNLIMITED, 0);
		smmap_file *f;

		assert_int_equal(smmap_file_new_path(&f, m, path, 0), 0);
		for (unsigned i = 0; i < 4; i++) {
			maps[i] = (struct slot){ f, (int64_t)(i * G), 3 };
			/* Offsets inside windows 4..7, not at their start. */
			news[i] = (struct slot){ f, (int64_t)((4 + i) * G + 17 * i),
						 3 };
		}
		run_release_order(m, maps, news, perms[p], 4, false);
		smmap_file_free(f);
		assert_int_equal(smmap_collect(m), 4);
		assert_int_equal(tl_stats(m).mappings, 0);
		assert_int_equal(smmap_manager_free(m), 0);
	}
	free(path);
}

/* The same order when the memory limit, not the handle limit, evicts. */
static void test_memory_limit_evicts_lru(void **state)
{
	static const unsigned perm[3] = { 1, 2, 0 };
	char *path = tl_make_file("lru-mem", 6 * G, 5);
	smmap_manager *m = new_manager(SMMAP_SLIDING, G, SMMAP_UNLIMITED,
				       3 * G, 0);
	struct slot maps[3], news[3];
	smmap_file *f;

	(void)state;
	assert_int_equal(smmap_file_new_path(&f, m, path, 0), 0);
	for (unsigned i = 0; i < 3; i++) {
		maps[i] = (struct slot){ f, (int64_t)(i * G), 5 };
		news[i] = (struct slot){ f, (int64_t)((3 + i) * G), 5 };
	}
	run_release_order(m, maps, news, perm, 3, true);
	/* Only the deliberate overcommits above went past the limit. */
	assert_int_equal(tl_stats(m).overcommits, 3);
	smmap_file_free(f);
	assert_int_equal(smmap_collect(m), 6);
	assert_int_equal(smmap_manager_free(m), 0);
	free(path);
}

/* Static policy: one window per file, LRU across files. */
static void test_static_lru_across_files(void **state)
{
	static const unsigned perm[3] = { 2, 0, 1 };
	smmap_manager *m = new_manager(SMMAP_STATIC, 0, 3, SMMAP_UNLIMITED, 0);
	struct slot maps[3], news[3];
	smmap_file *f[6];
	char *paths[6];

	(void)state;
	for (unsigned i = 0; i < 6; i++) {
		char name[32];

		snprintf(name, sizeof(name), "lru-static-%u", i);
		paths[i] = tl_make_file(name, 2 * G + 17 * (i + 1), 10 + i);
		assert_int_equal(smmap_file_new_path(&f[i], m, paths[i], 0), 0);
	}
	for (unsigned i = 0; i < 3; i++) {
		maps[i] = (struct slot){ f[i], (int64_t)(i * 100), 10 + i };
		news[i] = (struct slot){ f[3 + i], (int64_t)(G + i), 13 + i };
	}
	run_release_order(m, maps, news, perm, 3, false);
	assert_int_equal(tl_stats(m).open_files, 3);
	assert_int_equal(smmap_collect(m), 3);
	assert_int_equal(tl_stats(m).open_files, 0);
	for (unsigned i = 0; i < 6; i++) {
		smmap_file_free(f[i]);
		free(paths[i]);
	}
	assert_int_equal(smmap_manager_free(m), 0);
}

/*
 * B22: a cursor moving from window A to window B releases A first; A must
 * not be the victim when an older unused region exists.  (smmap evicts A:
 * it is the first unused region in offset order, and the one just freed.)
 */
static void test_just_released_survives(void **state)
{
	char *path = tl_make_file("lru-b22", 4 * G, 7);
	smmap_manager *m = new_manager(SMMAP_SLIDING, G, 2, SMMAP_UNLIMITED, 0);
	const struct slot *lru[1];
	smmap_cursor c1, c2;
	struct slot w[3];
	smmap_file *f;

	(void)state;
	assert_int_equal(smmap_file_new_path(&f, m, path, 0), 0);
	for (unsigned i = 0; i < 3; i++)
		w[i] = (struct slot){ f, (int64_t)(i * G), 7 };
	smmap_cursor_init(&c1, m);
	smmap_cursor_init(&c2, m);
	/* Window 1 is used and released first: the oldest unused region. */
	expect_miss(m, &c1, &w[1], 0);
	smmap_cursor_unuse_region(&c1);
	/* c2 on window 0, then moved to window 2: 0 is released just now. */
	expect_miss(m, &c2, &w[0], 0);
	expect_miss(m, &c2, &w[2], 1);
	/* Window 0 survived (a hit), so window 1 was the victim. */
	lru[0] = &w[0];
	expect_lru(m, lru, 1, 1);
	/* And window 1 must now be mapped again (a miss evicting 0). */
	expect_miss(m, &c1, &w[1], 1);
	assert_int_equal(tl_stats(m).mappings, 2);
	smmap_cursor_dispose(&c1);
	smmap_cursor_dispose(&c2);
	smmap_file_free(f);
	assert_int_equal(smmap_collect(m), 2);
	assert_int_equal(smmap_manager_free(m), 0);
	free(path);
}

/* A pinned region is never evicted, however old. */
static void test_pinned_never_evicted(void **state)
{
	enum { NWIN = 8 };
	char *path = tl_make_file("lru-pinned", NWIN * G, 9);
	smmap_manager *m = new_manager(SMMAP_SLIDING, G, 3, SMMAP_UNLIMITED, 0);
	struct smmap_region_info info;
	smmap_cursor pin, mover, third, extra;
	struct slot w[NWIN];
	const void *pinned_bytes;
	struct smmap_stats a;
	unsigned k, j, l;
	smmap_file *f;
	uint64_t misses = 0;

	(void)state;
	tl_srand(1);
	assert_int_equal(smmap_file_new_path(&f, m, path, 0), 0);
	for (unsigned i = 0; i < NWIN; i++)
		w[i] = (struct slot){ f, (int64_t)(i * G), 9 };
	smmap_cursor_init(&pin, m);
	smmap_cursor_init(&mover, m);
	smmap_cursor_init(&third, m);
	smmap_cursor_init(&extra, m);
	expect_miss(m, &pin, &w[0], 0); /* mapped first, never released */
	pinned_bytes = smmap_cursor_buffer(&pin);
	for (unsigned i = 0; i < 300; i++) {
		const struct slot *s = &w[tl_rand_range(1, NWIN - 1)];
		struct smmap_stats b;

		a = tl_stats(m);
		assert_int_equal(use_slot(&mover, m, s), 1);
		check_cursor_bytes(&mover, s);
		b = tl_stats(m);
		assert_true(b.mappings <= 3);
		if (b.misses != a.misses)
			misses++;
		/* Still the same mapping, pinned once, and intact. */
		assert_int_equal(smmap_cursor_region(&info, &pin), 0);
		assert_int_equal(info.client_count, 2);
		assert_ptr_equal(smmap_cursor_buffer(&pin), pinned_bytes);
		check_cursor_bytes(&pin, &w[0]);
	}
	assert_true(misses > 10);
	assert_true(tl_stats(m).evictions > 10);
	/* Window 0 was mapped exactly once and is still there: a hit. */
	expect_hit(m, &extra, &w[0]);
	smmap_cursor_unuse_region(&extra);
	/* Pin three distinct windows: 0, mover's k and a third j. */
	k = (unsigned)(smmap_cursor_ofs_begin(&mover) / G);
	j = k == 1 ? 2 : 1;
	l = (k == 3 || j == 3) ? 4 : 3;
	assert_int_equal(use_slot(&third, m, &w[j]), 1);
	assert_int_equal(tl_stats(m).mappings, 3);
	/* Every mapping pinned: a fourth window is refused, nothing evicted. */
	a = tl_stats(m);
	assert_int_equal(use_slot(&extra, m, &w[l]), -EAGAIN);
	assert_false(smmap_cursor_is_valid(&extra));
	assert_int_equal(tl_stats(m).evictions, a.evictions);
	assert_int_equal(tl_stats(m).limit_refusals, a.limit_refusals + 1);
	assert_int_equal(tl_stats(m).mappings, 3);
	check_cursor_bytes(&pin, &w[0]);
	assert_ptr_equal(smmap_cursor_buffer(&pin), pinned_bytes);
	/* Release k: it is the only candidate, so it is the victim. */
	smmap_cursor_unuse_region(&mover);
	expect_miss(m, &extra, &w[l], 1);
	check_cursor_bytes(&pin, &w[0]);
	check_cursor_bytes(&third, &w[j]);
	assert_int_equal(smmap_cursor_region(&info, &pin), 0);
	assert_int_equal(info.client_count, 2);
	smmap_cursor_dispose(&third);
	smmap_cursor_dispose(&extra);
	smmap_cursor_dispose(&pin);
	smmap_cursor_dispose(&mover);
	smmap_file_free(f);
	assert_int_equal(smmap_collect(m), 3);
	assert_int_equal(smmap_manager_free(m), 0);
	free(path);
}

/* collect() frees every unpinned region, only those, and counts them. */
static void test_collect(void **state)
{
	enum { NWIN = 6 };
	char *path = tl_make_file("lru-collect", NWIN * G, 11);
	smmap_manager *m = new_manager(SMMAP_SLIDING, G, SMMAP_UNLIMITED,
				       SMMAP_UNLIMITED, 0);
	smmap_cursor c[NWIN], p;
	struct slot w[NWIN];
	struct smmap_stats a;
	smmap_file *f;

	(void)state;
	assert_int_equal(smmap_collect(m), 0); /* nothing mapped */
	assert_int_equal(smmap_file_new_path(&f, m, path, 0), 0);
	for (unsigned i = 0; i < NWIN; i++) {
		w[i] = (struct slot){ f, (int64_t)(i * G), 11 };
		smmap_cursor_init(&c[i], m);
		expect_miss(m, &c[i], &w[i], 0);
	}
	smmap_cursor_init(&p, m);
	assert_int_equal(tl_stats(m).mappings, NWIN);
	smmap_cursor_unuse_region(&c[0]);
	smmap_cursor_unuse_region(&c[2]);
	smmap_cursor_unuse_region(&c[3]);
	smmap_cursor_unuse_region(&c[5]);
	a = tl_stats(m);
	assert_int_equal(smmap_collect(m), 4);
	assert_int_equal(tl_stats(m).collected, a.collected + 4);
	assert_int_equal(tl_stats(m).mappings, 2);
	assert_int_equal(smmap_num_file_handles(m), 2);
	assert_int_equal(tl_stats(m).mapped_bytes, 2 * G);
	assert_int_equal(smmap_mapped_memory_size(m), 2 * G);
	assert_int_equal(tl_stats(m).open_files, 1);
	assert_int_equal(tl_stats(m).evictions, a.evictions);
	/* The pinned ones are untouched and still mapped (hits). */
	check_cursor_bytes(&c[1], &w[1]);
	check_cursor_bytes(&c[4], &w[4]);
	expect_hit(m, &p, &w[1]);
	expect_hit(m, &p, &w[4]);
	smmap_cursor_unuse_region(&p);
	/* p's releases re-queued nothing: both are still pinned by c[1,4]. */
	assert_int_equal(smmap_collect(m), 0);
	assert_int_equal(tl_stats(m).mappings, 2);
	/* The collected ones must be mapped again. */
	expect_miss(m, &p, &w[0], 0);
	expect_miss(m, &p, &w[3], 0); /* releases 0 */
	assert_int_equal(smmap_collect(m), 1);
	assert_int_equal(tl_stats(m).mappings, 3);
	smmap_cursor_unuse_region(&p);
	smmap_cursor_unuse_region(&c[1]);
	smmap_cursor_unuse_region(&c[4]);
	assert_int_equal(smmap_collect(m), 3);
	assert_int_equal(tl_stats(m).collected, a.collected + 8);
	assert_int_equal(tl_stats(m).mappings, 0);
	assert_int_equal(tl_stats(m).mapped_bytes, 0);
	assert_int_equal(tl_stats(m).open_files, 0);
	assert_int_equal(smmap_collect(m), 0);
	for (unsigned i = 0; i < NWIN; i++)
		smmap_cursor_dispose(&c[i]);
	smmap_cursor_dispose(&p);
	smmap_file_free(f);
	assert_int_equal(smmap_manager_free(m), 0);
	free(path);
}

/*
 * A random sequence of cursor moves, releases and collects over two files,
 * checked step by step against a model LRU: every use_region must be a hit
 * or a miss exactly as the model says, with exactly the evictions it says.
 */
enum { M_FILES = 2, M_WIN = 6, M_SLOTS = M_FILES * M_WIN, M_CURSORS = 3,
       M_HANDLES = 4 };

struct model {
	bool mapped[M_SLOTS];
	unsigned pins[M_SLOTS];
	int lru[M_SLOTS]; /* slot ids, head first */
	unsigned nlru;
	uint64_t hits, misses, evictions, collected, mappings;
};

static void model_lru_del(struct model *md, int s)
{
	for (unsigned i = 0; i < md->nlru; i++) {
		if (md->lru[i] == s) {
			memmove(&md->lru[i], &md->lru[i + 1],
				(md->nlru - i - 1) * sizeof(md->lru[0]));
			md->nlru--;
			return;
		}
	}
}

static void model_unpin(struct model *md, int s)
{
	assert_true(md->pins[s] > 0);
	if (--md->pins[s] == 0)
		md->lru[md->nlru++] = s;
}

static void model_use(struct model *md, int s)
{
	if (md->mapped[s]) {
		md->hits++;
		if (md->pins[s]++ == 0)
			model_lru_del(md, s);
		return;
	}
	md->misses++;
	while (md->mappings + 1 > M_HANDLES) {
		int v = md->lru[0];

		assert_true(md->nlru > 0);
		model_lru_del(md, v);
		md->mapped[v] = false;
		md->mappings--;
		md->evictions++;
	}
	md->mapped[s] = true;
	md->pins[s] = 1;
	md->mappings++;
}

static void model_compare(const struct model *md, smmap_manager *m,
			  const struct smmap_stats *s0, unsigned step)
{
	struct smmap_stats s = tl_stats(m);

	if (s.hits - s0->hits != md->hits ||
	    s.misses - s0->misses != md->misses ||
	    s.evictions - s0->evictions != md->evictions ||
	    s.collected - s0->collected != md->collected ||
	    s.mappings != md->mappings)
		fprintf(stderr,
			"# step %u: hits %" PRIu64 "/%" PRIu64
			" misses %" PRIu64 "/%" PRIu64
			" evictions %" PRIu64 "/%" PRIu64
			" mappings %" PRIu64 "/%" PRIu64 " (library/model)\n",
			step, s.hits - s0->hits, md->hits,
			s.misses - s0->misses, md->misses,
			s.evictions - s0->evictions, md->evictions, s.mappings,
			md->mappings);
	assert_int_equal(s.hits - s0->hits, md->hits);
	assert_int_equal(s.misses - s0->misses, md->misses);
	assert_int_equal(s.evictions - s0->evictions, md->evictions);
	assert_int_equal(s.collected - s0->collected, md->collected);
	assert_int_equal(s.mappings, md->mappings);
	assert_true(s.mappings <= M_HANDLES);
}

static void test_random_against_model(void **state)
{
	smmap_manager *m = new_manager(SMMAP_SLIDING, G, M_HANDLES,
				       SMMAP_UNLIMITED, 0);
	uint64_t fsize[M_FILES];
	smmap_cursor c[M_CURSORS];
	int cur[M_CURSORS];
	smmap_file *f[M_FILES];
	char *paths[M_FILES];
	struct smmap_stats s0;
	struct model md;
	unsigned steps = tl_slow_variant() ? 1500 : 6000;

	(void)state;
	tl_srand(2);
	fsize[0] = M_WIN * G;
	fsize[1] = (M_WIN - 1) * G + 100; /* last window: 100 bytes */
	for (unsigned i = 0; i < M_FILES; i++) {
		char name[32];

		snprintf(name, sizeof(name), "lru-model-%u", i);
		paths[i] = tl_make_file(name, fsize[i], 20 + i);
		assert_int_equal(smmap_file_new_path(&f[i], m, paths[i], 0), 0);
	}
	memset(&md, 0, sizeof(md));
	for (unsigned i = 0; i < M_CURSORS; i++) {
		smmap_cursor_init(&c[i], m);
		cur[i] = -1;
	}
	s0 = tl_stats(m);
	for (unsigned step = 0; step < steps; step++) {
		unsigned i = (unsigned)tl_rand_range(0, M_CURSORS - 1);
		uint64_t op = tl_rand_range(0, 99);

		if (op < 80) {
			int s = (int)tl_rand_range(0, M_SLOTS - 1);
			unsigned fi = (unsigned)s / M_WIN, wi = (unsigned)s % M_WIN;
			uint64_t wofs = wi * G;
			uint64_t wlen = fsize[fi] - wofs < G ? fsize[fi] - wofs : G;
			struct slot sl = { f[fi],
					   (int64_t)(wofs + tl_rand_range(0, wlen - 1)),
					   20 + fi };

			if (cur[i] != s) {
				if (cur[i] >= 0)
					model_unpin(&md, cur[i]);
				model_use(&md, s);
			} /* else: the fast path, nothing counted */
			cur[i] = s;
			assert_int_equal(use_slot(&c[i], m, &sl), 1);
			check_cursor_bytes(&c[i], &sl);
			assert_int_equal(smmap_cursor_ofs_end(&c[i]), wofs + wlen);
		} else if (op < 97) {
			if (cur[i] >= 0)
				model_unpin(&md, cur[i]);
			cur[i] = -1;
			if (op & 1) {
				smmap_cursor_unuse_region(&c[i]);
			} else {
				smmap_cursor_dispose(&c[i]);
				smmap_cursor_init(&c[i], m);
			}
			assert_false(smmap_cursor_is_valid(&c[i]));
		} else {
			size_t n = md.nlru;

			for (unsigned k = 0; k < n; k++)
				md.mapped[md.lru[k]] = false;
			md.mappings -= n;
			md.collected += n;
			md.nlru = 0;
			assert_int_equal(smmap_collect(m), n);
		}
		model_compare(&md, m, &s0, step);
	}
	fprintf(stderr, "# model: %u steps, %" PRIu64 " hits, %" PRIu64
		" misses, %" PRIu64 " evictions\n", steps, md.hits, md.misses,
		md.evictions);
	assert_true(md.evictions > steps / 10);
	for (unsigned i = 0; i < M_CURSORS; i++)
		smmap_cursor_dispose(&c[i]);
	for (unsigned i = 0; i < M_FILES; i++) {
		smmap_file_free(f[i]);
		free(paths[i]);
	}
	assert_int_equal(smmap_collect(m), md.mappings);
	assert_int_equal(tl_stats(m).mappings, 0);
	assert_int_equal(tl_stats(m).files, 0);
	assert_int_equal(smmap_manager_free(m), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_release_order_decides),
		cmocka_unit_test(test_memory_limit_evicts_lru),
		cmocka_unit_test(test_static_lru_across_files),
		cmocka_unit_test(test_just_released_survives),
		cmocka_unit_test(test_pinned_never_evicted),
		cmocka_unit_test(test_collect),
		cmocka_unit_test(test_random_against_model),
	};

	G = smmap_granularity();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
