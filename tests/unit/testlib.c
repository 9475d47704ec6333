/*
 * testlib.c - shared unit-test helpers (see testlib.h).
 */
#include "testlib.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static pthread_once_t seed_once = PTHREAD_ONCE_INIT;
static uint64_t seed_value;
static _Thread_local uint64_t rng_state;
static _Thread_local bool rng_ready;

static void seed_init(void)
{
	const char *env = getenv("SMMAP_TEST_SEED");
	struct timespec ts;

	if (env && *env) {
		seed_value = strtoull(env, NULL, 0);
	} else {
		clock_gettime(CLOCK_REALTIME, &ts);
		seed_value = (uint64_t)ts.tv_sec * 1000003u ^ (uint64_t)ts.tv_nsec ^
			     (uint64_t)getpid() << 32;
	}
	if (seed_value == 0)
		seed_value = 88172645463325252u;
	fprintf(stderr, "# seed=%" PRIu64 ", rerun with SMMAP_TEST_SEED=%" PRIu64
		"\n", seed_value, seed_value);
}

uint64_t tl_seed(void)
{
	pthread_once(&seed_once, seed_init);
	return seed_value;
}

void tl_srand(uint64_t stream)
{
	rng_state = tl_seed() + stream * UINT64_C(0x9e3779b97f4a7c15);
	if (rng_state == 0)
		rng_state = 1;
	rng_ready = true;
}

uint64_t tl_rand(void)
{
	if (!rng_ready)
		tl_srand(0);
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * UINT64_C(2685821657736338717);
}

uint64_t tl_rand_range(uint64_t lo, uint64_t hi)
{
	uint64_t span = hi - lo + 1;

	if (span == 0) /* the whole 64-bit range */
		return tl_rand();
	return lo + tl_rand() % span;
}

static char tmpdir[256];

static int rm_entry(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void tmpdir_cleanup(void)
{
	if (tmpdir[0] && !getenv("SMMAP_TEST_KEEP"))
		nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *tl_tmpdir(void)
{
	if (!tmpdir[0]) {
		const char *base = getenv("TMPDIR");

		snprintf(tmpdir, sizeof(tmpdir), "%s/smmap-unit-XXXXXX",
			 base && *base ? base : "/tmp");
		if (!mkdtemp(tmpdir)) {
			fprintf(stderr, "# mkdtemp: %s\n", strerror(errno));
			abort();
		}
		atexit(tmpdir_cleanup);
	}
	return tmpdir;
}

char *tl_make_file(const char *name, uint64_t size, unsigned salt)
{
	size_t chunk = 1 << 20;
	unsigned char *buf = malloc(chunk);
	char *path = malloc(strlen(tl_tmpdir()) + strlen(name) + 2);
	uint64_t done = 0;
	int fd;

	assert_non_null(buf);
	assert_non_null(path);
	sprintf(path, "%s/%s", tl_tmpdir(), name);
	fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	while (done < size) {
		size_t n = size - done < chunk ? (size_t)(size - done) : chunk;

		for (size_t i = 0; i < n; i++)
			buf[i] = tl_pattern(done + i, salt);
		assert_int_equal(write(fd, buf, n), (ssize_t)n);
		done += n;
	}
	assert_int_equal(close(fd), 0);
	free(buf);
	return path;
}

unsigned char *tl_read_file(const char *path, uint64_t *size)
{
	struct stat st;
	unsigned char *buf;
	size_t done = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	while (done < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + done, (size_t)st.st_size - done);

		assert_true(n > 0);
		done += (size_t)n;
	}
	close(fd);
	*size = (uint64_t)st.st_size;
	return buf;
}

bool tl_check_pattern(const void *p, size_t n, uint64_t ofs, unsigned salt)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i] != tl_pattern(ofs + i, salt))
			return false;
	return true;
}

bool tl_slow_variant(void)
{
	const char *v = getenv("SMMAP_TEST_VARIANT");

	return v && *v;
}

atomic_uint tl_failures;

smmap_manager *tl_manager(enum smmap_policy policy, struct tl_opts o)
{
	smmap_options opts;
	smmap_manager *m = NULL;

	smmap_options_init(&opts, policy);
	if (policy == SMMAP_SLIDING && o.window)
		opts.window_size = o.window;
	if (o.max_handles)
		opts.max_handles = o.max_handles;
	if (o.max_mapped)
		opts.max_mapped = o.max_mapped;
	if (o.max_fds)
		opts.max_fds = o.max_fds;
	opts.flags = o.flags;
	assert_int_equal(smmap_manager_new(&m, &opts), 0);
	assert_non_null(m);
	return m;
}

struct smmap_stats tl_stats(const smmap_manager *m)
{
	struct smmap_stats s;

	smmap_stats_get(&s, m);
	return s;
}

void tl_expect_bytes(const void *got, const void *want, size_t n, uint64_t ofs)
{
	const unsigned char *a = got, *b = want;

	assert_non_null(got);
	if (memcmp(got, want, n) == 0)
		return;
	for (size_t i = 0; i < n; i++)
		if (a[i] != b[i])
			fail_msg("byte at file offset %" PRIu64
				 " is 0x%02x, expected 0x%02x",
				 ofs + i, a[i], b[i]);
}

void tl_expect_pattern(const void *p, size_t n, uint64_t ofs, unsigned salt)
{
	const unsigned char *b = p;

	assert_non_null(p);
	if (tl_check_pattern(p, n, ofs, salt))
		return;
	for (size_t i = 0; i < n; i++)
		if (b[i] != tl_pattern(ofs + i, salt))
			fail_msg("byte at file offset %" PRIu64
				 " is 0x%02x, expected 0x%02x",
				 ofs + i, b[i], tl_pattern(ofs + i, salt));
}

void tl_check_cursor(const smmap_cursor *c, uint64_t ofs, unsigned salt)
{
	assert_true(smmap_cursor_is_valid(c));
	assert_int_equal(smmap_cursor_ofs_begin(c), ofs);
	assert_true(smmap_cursor_size(c) > 0);
	assert_true(tl_check_pattern(smmap_cursor_buffer(c),
				     smmap_cursor_size(c), ofs, salt));
}
