/*
 * test_sigbus.c - files truncated under their mappings (smmap bug B12).
 *
 * Reading a mapping past the end of a file truncated underneath raises
 * SIGBUS.  The library's copies (smmap_cursor_read, smmap_buffer_copy,
 * smmap_buffer_byte) must turn that into -EIO or a short count, from any
 * number of threads, and must not swallow faults that happen outside them.
 *
 * Truncation sizes are page multiples and the file is restored with
 * pwrite(2) of the pattern, so a page is either gone (SIGBUS) or holds the
 * pattern: every byte a call reports as read must match tl_pattern().
 */
#include "testlib.h"

#include "smmap.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t G;

static smmap_manager *new_manager(uint64_t window)
{
	return tl_manager(SMMAP_SLIDING, (struct tl_opts){ .window = window });
}

/* Write the pattern over [from, to) with pwrite (extends the file). */
static int restore_range(int fd, uint64_t from, uint64_t to, unsigned salt)
{
	unsigned char buf[16384];

	while (from < to) {
		size_t n = to - from < sizeof(buf) ? (size_t)(to - from)
						   : sizeof(buf);

		for (size_t i = 0; i < n; i++)
			buf[i] = tl_pattern(from + i, salt);
		if (pwrite(fd, buf, n, (off_t)from) != (ssize_t)n)
			return -1;
		from += n;
	}
	return 0;
}

static void restore_file(int fd, uint64_t size, unsigned salt)
{
	assert_int_equal(restore_range(fd, 0, size, salt), 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
}

static bool sigbus_blocked(void)
{
	sigset_t set;

	pthread_sigmask(SIG_BLOCK, NULL, &set);
	return sigismember(&set, SIGBUS) == 1;
}

/* Read the whole file and compare (the file is intact). */
static void check_whole_file(smmap_cursor *c, uint64_t size, unsigned salt)
{
	unsigned char *buf = malloc(size + 1);

	assert_non_null(buf);
	assert_int_equal(smmap_cursor_read(c, buf, size + 1, 0), (ssize_t)size);
	assert_true(tl_check_pattern(buf, size, 0, salt));
	free(buf);
}

/*
 * One thread: pin a window, truncate, read through the pinned window (the
 * fast path, no lock, no fstat), which must fault; -EIO each time, SIGBUS
 * never left blocked, and correct reads again once the file is restored.
 */
static void test_pinned_window_faults(void **state)
{
	const uint64_t size = 8 * G, cut = 2 * G;
	char *path = tl_make_file("sb-pinned", size, 1);
	smmap_manager *m = new_manager(size); /* one window: the whole file */
	unsigned char *dst = malloc(size);
	int fd = open(path, O_RDWR | O_CLOEXEC);
	smmap_cursor c, cb;
	smmap_buffer b;
	smmap_file *f;
	uint64_t caught = 0;

	(void)state;
	assert_non_null(dst);
	assert_true(fd >= 0);
	assert_int_equal(smmap_file_new_path(&f, m, path, 0), 0);
	assert_int_equal(smmap_cursor_init_file(&c, f), 0);
	assert_int_equal(smmap_cursor_init_file(&cb, f), 0);
	smmap_buffer_init(&b);
	for (int round = 0; round < 12; round++) {
		struct smmap_stats a;
		ssize_t n = 0;
		int op = round % 4;

		restore_file(fd, size, 1);
		assert_true(smmap_file_revalidate(f, NULL) >= 0);
		assert_int_equal(smmap_file_size(f), size);
		/* Pin the window, check it, then cut the file under it. */
		assert_int_equal(smmap_cursor_use_region(&c, 0, 0), 1);
		assert_int_equal(smmap_buffer_begin(&b, &cb, 0, SMMAP_TO_END), 0);
		assert_int_equal(smmap_buffer_len(&b), size);
		assert_int_equal(smmap_cursor_read(&c, dst, size, 0),
				 (ssize_t)size);
		assert_true(tl_check_pattern(dst, size, 0, 1));
		assert_int_equal(ftruncate(fd, (off_t)cut), 0);
		memset(dst, 0, size);
		a = tl_stats(m);
		switch (op) {
		case 0: /* entirely past the new end */
			n = smmap_cursor_read(&c, dst, G, 5 * (int64_t)G);
			break;
		case 1: /* one copy crossing the new end */
			n = smmap_cursor_read(&c, dst, 4 * G, 0);
			break;
		case 2:
			n = smmap_buffer_copy(&b, dst, 3 * (int64_t)G,
					      6 * (int64_t)G);
			break;
		case 3:
			n = smmap_buffer_byte(&b, 6 * (int64_t)G + 5);
			break;
		}
		assert_int_equal(n, -EIO);
		assert_false(sigbus_blocked());
		caught++;
		assert_int_equal(tl_stats(m).sigbus_caught, a.sigbus_caught + 1);
		assert_int_equal(tl_stats(m).sigbus_caught, caught);
		/* The library learnt the new size. */
		assert_int_equal(smmap_file_size(f), cut);
		/*
		 * Drop the pins on the old window (the other cursor still
		 * holds it: it would fault too); the buffer keeps its length.
		 */
		smmap_cursor_unuse_region(&c);
		smmap_cursor_unuse_region(&cb);
		assert_int_equal(smmap_buffer_len(&b), size);
		/* Bytes before the cut read correctly; a short count. */
		memset(dst, 0, size);
		assert_int_equal(smmap_buffer_copy(&b, dst, (int64_t)G,
						   4 * (int64_t)G),
				 (ssize_t)G);
		assert_true(tl_check_pattern(dst, G, G, 1));
		assert_int_equal(smmap_buffer_byte(&b, 10), tl_pattern(10, 1));
		memset(dst, 0, size);
		assert_int_equal(smmap_cursor_read(&c, dst, size, 0), (ssize_t)cut);
		assert_true(tl_check_pattern(dst, cut, 0, 1));
		/* Past the new end: nothing to read, and no fault. */
		assert_int_equal(smmap_cursor_read(&c, dst, 10, 3 * (int64_t)G), 0);
		assert_int_equal(smmap_buffer_copy(&b, dst, 3 * (int64_t)G,
						   4 * (int64_t)G), -EIO);
		assert_int_equal(smmap_buffer_byte(&b, 6 * (int64_t)G + 5), -EIO);
		assert_int_equal(tl_stats(m).sigbus_caught, caught);
		smmap_buffer_end(&b);
		assert_int_equal(smmap_buffer_begin(&b, &cb, 0, SMMAP_TO_END), 0);
		assert_int_equal(smmap_buffer_len(&b), cut);
		assert_int_equal(smmap_buffer_copy(&b, dst, 0, -1),
				 (ssize_t)cut - 1);
		assert_true(tl_check_pattern(dst, cut - 1, 0, 1));
		smmap_buffer_end(&b);
		smmap_cursor_unuse_region(&c);
	}
	restore_file(fd, size, 1);
	assert_int_equal(smmap_file_revalidate(f, NULL), 1);
	check_whole_file(&c, size, 1);
	smmap_cursor_dispose(&c);
	smmap_cursor_dispose(&cb);
	smmap_file_free(f);
	smmap_collect(m);
	assert_int_equal(tl_stats(m).mappings, 0);
	assert_int_equal(smmap_manager_free(m), 0);
	close(fd);
	free(dst);
	free(path);
}

/*
 * Several windows still indexed (the library does not know yet): a read
 * across them returns the bytes before the cut (a short count).
 */
static void test_short_count_across_windows(void **state)
{
	const uint64_t size = 8 * G, cut = 3 * G;
	char *path = tl_make_file("sb-short", size, 2);
	smmap_manager *m = new_manager(G);
	unsigned char *dst = malloc(size);
	int fd = open(path, O_RDWR | O_CLOEXEC);
	smmap_cursor c;
	ssize_t n;

	(void)state;
	assert_non_null(dst);
	assert_true(fd >= 0);
	assert_int_equal(smmap_cursor_init_path(&c, m, path), 0);
	check_whole_file(&c, size, 2); /* maps all 8 windows */
	smmap_cursor_unuse_region(&c);
	assert_int_equal(tl_stats(m).mappings, 8);
	assert_int_equal(ftruncate(fd, (off_t)cut), 0);
	memset(dst, 0, size);
	n = smmap_cursor_read(&c, dst, 6 * G, (int64_t)G);
	assert_int_equal(n, (ssize_t)(cut - G));
	assert_true(tl_check_pattern(dst, (size_t)n, G, 2));
	assert_int_equal(tl_stats(m).sigbus_caught, 1);
	assert_false(sigbus_blocked());
	{
		uint64_t fsize;

		assert_int_equal(smmap_cursor_file_size(&fsize, &c), 0);
		assert_int_equal(fsize, cut);
	}
	/* Windows past the cut were retired by the revalidation. */
	assert_int_equal(tl_stats(m).mappings, 3);
	assert_int_equal(smmap_cursor_read(&c, dst, 6 * G, (int64_t)G),
			 (ssize_t)(cut - G));
	restore_file(fd, size, 2);
	assert_int_equal(smmap_file_revalidate(smmap_cursor_file(&c), NULL), 1);
	check_whole_file(&c, size, 2);
	assert_int_equal(tl_stats(m).sigbus_caught, 1);
	smmap_cursor_dispose(&c);
	smmap_collect(m);
	assert_int_equal(smmap_manager_free(m), 0);
	close(fd);
	free(dst);
	free(path);
}

/* ---- several readers while another thread truncates and restores ---- */

enum { NREADERS = 4 };

struct shared {
	smmap_manager *m;
	smmap_file *f;
	uint64_t size;
	uint64_t window;
	unsigned salt;
	int fd;
	pthread_barrier_t barrier;
	atomic_bool stop;
	atomic_uint_fast64_t ok_bytes, eio, zero, eagain, short_reads, ops;
};

struct reader {
	struct shared *sh;
	unsigned id;
};

/* A result of a copy of `len` bytes at file offset `ofs` into `dst`. */
static void judge_copy(struct shared *sh, ssize_t n, const unsigned char *dst,
		       size_t len, uint64_t ofs)
{
	if (n > 0) {
		TL_TCHECK((size_t)n <= len);
		/* Consume the destination: every byte claimed must match. */
		TL_TCHECK(tl_check_pattern(dst, (size_t)n, ofs, sh->salt));
		atomic_fetch_add(&sh->ok_bytes, (uint64_t)n);
		if ((size_t)n < len)
			atomic_fetch_add(&sh->short_reads, 1);
	} else if (n == 0) {
		atomic_fetch_add(&sh->zero, 1);
	} else if (n == -EIO) {
		atomic_fetch_add(&sh->eio, 1);
	} else if (n == -EAGAIN) {
		/* The file kept changing while a window was mapped. */
		atomic_fetch_add(&sh->eagain, 1);
	} else {
		fprintf(stderr, "# unexpected result %zd (%s)\n", n,
			strerror((int)-n));
		TL_TCHECK(!"unexpected error");
	}
}

static void reader_random_op(struct shared *sh, smmap_cursor *c,
			     smmap_cursor *cb, smmap_buffer *b,
			     unsigned char *dst)
{
	uint64_t ofs = tl_rand_range(0, sh->size - 1);
	size_t len = (size_t)tl_rand_range(1, 3 * sh->window);
	ssize_t n;
	int ret;

	switch (tl_rand_range(0, 3)) {
	case 0:
		n = smmap_cursor_read(c, dst, len, (int64_t)ofs);
		judge_copy(sh, n, dst, len, ofs);
		break;
	case 1: /* pin a window, then read through it (fast path) */
		ret = smmap_cursor_use_region(c, (int64_t)ofs, 0);
		if (ret != 1) {
			judge_copy(sh, ret, dst, 0, ofs);
			break;
		}
		for (int i = 0; i < 8; i++) {
			uint64_t o = smmap_cursor_ofs_begin(c);
			uint64_t end = smmap_cursor_ofs_end(c);
			uint64_t at = tl_rand_range(o, end - 1);
			size_t l = (size_t)tl_rand_range(1, end - at);

			n = smmap_cursor_read(c, dst, l, (int64_t)at);
			judge_copy(sh, n, dst, l, at);
			if (n <= 0 || !smmap_cursor_is_valid(c))
				break;
			usleep(20);
		}
		break;
	case 2:
	case 3:
		ret = smmap_buffer_begin(b, cb, (int64_t)ofs, SMMAP_TO_END);
		if (ret == -ERANGE) { /* the file is known shorter now */
			TL_TCHECK(smmap_buffer_len(b) == 0);
			atomic_fetch_add(&sh->zero, 1);
			break;
		}
		if (ret != 0) {
			judge_copy(sh, ret, dst, 0, ofs);
			break;
		}
		/* Clamped to the end of the file (whatever size it had). */
		if (smmap_buffer_len(b) == 0) {
			/* B15: the file was empty, an empty buffer at 0. */
			TL_TCHECK(ofs == 0);
			atomic_fetch_add(&sh->zero, 1);
			smmap_buffer_end(b);
			break;
		}
		TL_TCHECK(smmap_buffer_len(b) <= sh->size - ofs);
		if (smmap_buffer_len(b) > sh->size - ofs) {
			fprintf(stderr, "# buffer at %" PRIu64 ": length %" PRIu64
				" past the end of the file\n", ofs,
				smmap_buffer_len(b));
			smmap_buffer_end(b);
			break;
		}
		for (int i = 0; i < 4; i++) {
			uint64_t blen = smmap_buffer_len(b);
			uint64_t s = tl_rand_range(0, blen - 1);
			uint64_t e = tl_rand_range(s + 1,
						   s + len < blen ? s + len
								  : blen);

			if (tl_rand_range(0, 1)) {
				n = smmap_buffer_copy(b, dst, (int64_t)s,
						      (int64_t)e);
				judge_copy(sh, n, dst, e - s, ofs + s);
			} else {
				ret = smmap_buffer_byte(b, (int64_t)s);
				if (ret >= 0) {
					TL_TCHECK(ret == tl_pattern(ofs + s,
								 sh->salt));
					atomic_fetch_add(&sh->ok_bytes, 1);
				} else {
					judge_copy(sh, ret, dst, 1, ofs + s);
				}
			}
		}
		smmap_buffer_end(b);
		break;
	}
	atomic_fetch_add(&sh->ops, 1);
}

static void *reader_main(void *arg)
{
	struct reader *rd = arg;
	struct shared *sh = rd->sh;
	unsigned char *dst = malloc(3 * sh->window + 1);
	smmap_cursor c, cb;
	smmap_buffer b;
	ssize_t n;

	tl_srand(100 + rd->id);
	TL_TCHECK(dst != NULL);
	if (!dst)
		return NULL;
	TL_TCHECK(smmap_cursor_init_file(&c, sh->f) == 0);
	TL_TCHECK(smmap_cursor_init_file(&cb, sh->f) == 0);
	smmap_buffer_init(&b);

	/* Phase 1: every reader pins the last window, the file is cut. */
	TL_TCHECK(smmap_cursor_use_region(&c, (int64_t)(sh->size - sh->window),
				       0) == 1);
	TL_TCHECK(smmap_buffer_begin(&b, &cb, (int64_t)(sh->size - sh->window),
				  SMMAP_TO_END) == 0);
	pthread_barrier_wait(&sh->barrier); /* pinned */
	pthread_barrier_wait(&sh->barrier); /* cut */
	n = smmap_cursor_read(&c, dst, 100, (int64_t)(sh->size - 200));
	TL_TCHECK(n == -EIO);
	n = smmap_buffer_copy(&b, dst, 10, (int64_t)sh->window - 10);
	TL_TCHECK(n == -EIO);
	TL_TCHECK(!sigbus_blocked());
	smmap_buffer_end(&b);
	smmap_cursor_unuse_region(&c);
	pthread_barrier_wait(&sh->barrier); /* faulted */
	pthread_barrier_wait(&sh->barrier); /* restored */

	/* Phase 2: random reads while the file is cut and restored. */
	while (!atomic_load(&sh->stop))
		reader_random_op(sh, &c, &cb, &b, dst);
	smmap_buffer_end(&b);
	pthread_barrier_wait(&sh->barrier); /* stopped */
	pthread_barrier_wait(&sh->barrier); /* restored for good */

	/* Phase 3: all reads are correct again. */
	for (uint64_t ofs = 0; ofs < sh->size; ofs += sh->window / 2 + 7) {
		size_t len = 2 * sh->window;

		if (len > sh->size - ofs)
			len = (size_t)(sh->size - ofs);
		n = smmap_cursor_read(&c, dst, len, (int64_t)ofs);
		TL_TCHECK(n == (ssize_t)len);
		TL_TCHECK(tl_check_pattern(dst, len, ofs, sh->salt));
	}
	smmap_cursor_dispose(&c);
	smmap_cursor_dispose(&cb);
	free(dst);
	return NULL;
}

static void test_concurrent_truncation(void **state)
{
	struct shared sh;
	struct reader rd[NREADERS];
	pthread_t th[NREADERS];
	char *path;
	unsigned cycles = tl_slow_variant() ? 40 : 300;
	struct smmap_stats s;
	uint64_t phase1;

	(void)state;
	memset(&sh, 0, sizeof(sh));
	sh.window = 4 * G;
	sh.size = 16 * G;
	sh.salt = 7;
	path = tl_make_file("sb-threads", sh.size, sh.salt);
	sh.fd = open(path, O_RDWR | O_CLOEXEC);
	assert_true(sh.fd >= 0);
	sh.m = new_manager(sh.window);
	assert_int_equal(smmap_file_new_path(&sh.f, sh.m, path, 0), 0);
	assert_int_equal(pthread_barrier_init(&sh.barrier, NULL, NREADERS + 1),
			 0);
	atomic_store(&tl_failures, 0);
	tl_srand(99);
	for (unsigned i = 0; i < NREADERS; i++) {
		rd[i].sh = &sh;
		rd[i].id = i;
		assert_int_equal(pthread_create(&th[i], NULL, reader_main, &rd[i]),
				 0);
	}
	/* Phase 1. */
	pthread_barrier_wait(&sh.barrier);
	assert_int_equal(ftruncate(sh.fd, (off_t)sh.window), 0);
	pthread_barrier_wait(&sh.barrier);
	pthread_barrier_wait(&sh.barrier);
	s = tl_stats(sh.m);
	phase1 = s.sigbus_caught;
	assert_true(phase1 >= 2 * NREADERS);
	restore_file(sh.fd, sh.size, sh.salt);
	assert_int_equal(smmap_file_revalidate(sh.f, NULL), 1);
	pthread_barrier_wait(&sh.barrier);

	/* Phase 2: cut at a random page boundary, restore, repeat. */
	for (unsigned i = 0; i < cycles; i++) {
		uint64_t cut = tl_rand_range(0, sh.size / G - 1) * G;

		assert_int_equal(ftruncate(sh.fd, (off_t)cut), 0);
		/* Sometimes the library is told, mostly it finds out. */
		if (tl_rand_range(0, 3) == 0)
			assert_true(smmap_file_revalidate(sh.f, NULL) >= 0);
		usleep((useconds_t)tl_rand_range(100, 2000));
		assert_int_equal(restore_range(sh.fd, cut, sh.size, sh.salt), 0);
		/* Growth is only noticed by revalidation or a new mapping. */
		assert_true(smmap_file_revalidate(sh.f, NULL) >= 0);
		usleep((useconds_t)tl_rand_range(100, 2000));
	}
	atomic_store(&sh.stop, true);
	pthread_barrier_wait(&sh.barrier);
	restore_file(sh.fd, sh.size, sh.salt);
	assert_true(smmap_file_revalidate(sh.f, NULL) >= 0);
	pthread_barrier_wait(&sh.barrier);
	for (unsigned i = 0; i < NREADERS; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);

	s = tl_stats(sh.m);
	fprintf(stderr,
		"# %u cycles, %" PRIu64 " ops: %" PRIu64 " bytes ok, %" PRIu64
		" -EIO, %" PRIu64 " short, %" PRIu64 " empty, %" PRIu64
		" -EAGAIN; sigbus_caught %" PRIu64 "\n",
		cycles, (uint64_t)sh.ops, (uint64_t)sh.ok_bytes,
		(uint64_t)sh.eio, (uint64_t)sh.short_reads, (uint64_t)sh.zero,
		(uint64_t)sh.eagain, s.sigbus_caught);
	assert_int_equal(atomic_load(&tl_failures), 0);
	assert_true(s.sigbus_caught > phase1); /* phase 2 faulted too */
	assert_true(sh.ok_bytes > 0);
	assert_true(sh.eio > 0);
	smmap_file_free(sh.f);
	smmap_collect(sh.m);
	assert_int_equal(tl_stats(sh.m).mappings, 0);
	assert_int_equal(smmap_manager_free(sh.m), 0);
	pthread_barrier_destroy(&sh.barrier);
	close(sh.fd);
	free(path);
}

/* ---- faults outside guarded copies are not swallowed ---- */

struct cut_mapping {
	char *path;
	smmap_manager *m;
	smmap_cursor guarded, raw;
	int fd;
};

/* Two cursors pinning the same 4-page window of a file cut to 1 page. */
static void cut_mapping_setup(struct cut_mapping *cm, const char *name)
{
	cm->path = tl_make_file(name, 4 * G, 3);
	cm->m = new_manager(4 * G);
	cm->fd = open(cm->path, O_RDWR | O_CLOEXEC);
	assert_true(cm->fd >= 0);
	assert_int_equal(smmap_cursor_init_path(&cm->guarded, cm->m, cm->path),
			 0);
	assert_int_equal(smmap_cursor_use_region(&cm->guarded, 0, 0), 1);
	smmap_cursor_init(&cm->raw, cm->m);
	assert_int_equal(smmap_cursor_copy(&cm->raw, &cm->guarded), 0);
	assert_int_equal(smmap_cursor_use_region(&cm->raw, 2 * (int64_t)G, 0), 1);
	assert_int_equal(ftruncate(cm->fd, (off_t)G), 0);
	fflush(NULL);
}

static void cut_mapping_teardown(struct cut_mapping *cm)
{
	smmap_cursor_dispose(&cm->raw);
	smmap_cursor_dispose(&cm->guarded);
	smmap_collect(cm->m);
	assert_int_equal(smmap_manager_free(cm->m), 0);
	close(cm->fd);
	free(cm->path);
}

/* In a child: a guarded read faults into -EIO, a raw access dies. */
static void child_fault(struct cut_mapping *cm)
{
	unsigned char buf[16];
	const volatile unsigned char *p;
	struct rlimit no_core = { 0, 0 };

	setrlimit(RLIMIT_CORE, &no_core);
	if (smmap_cursor_read(&cm->guarded, buf, sizeof(buf),
			      3 * (int64_t)G) != -EIO)
		_exit(10);
	if (sigbus_blocked())
		_exit(11);
	p = smmap_cursor_buffer(&cm->raw); /* file offset 2 pages: gone */
	if (!p)
		_exit(12);
	buf[0] = p[1];
	_exit(buf[0] == 0xff ? 13 : 14); /* never reached */
}

static void expect_child(pid_t pid, bool by_signal, int code)
{
	int status;

	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFEXITED(status))
		fprintf(stderr, "# child exited with %d\n", WEXITSTATUS(status));
	if (WIFSIGNALED(status))
		fprintf(stderr, "# child killed by signal %d\n", WTERMSIG(status));
	if (by_signal) {
		assert_true(WIFSIGNALED(status));
		assert_int_equal(WTERMSIG(status), code);
	} else {
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), code);
	}
}

/* With the default disposition before the guard: death by SIGBUS. */
static void test_foreign_fault_kills(void **state)
{
	struct cut_mapping cm;
	pid_t pid;

	(void)state;
	cut_mapping_setup(&cm, "sb-foreign");
	pid = fork();
	if (pid == 0) {
		signal(SIGBUS, SIG_DFL);
		if (smmap_sigbus_install() != 0)
			_exit(9);
		child_fault(&cm);
	}
	expect_child(pid, true, SIGBUS);
	/* The parent's own guarded copies still work. */
	{
		unsigned char buf[16];

		assert_int_equal(smmap_cursor_read(&cm.guarded, buf, sizeof(buf),
						   3 * (int64_t)G), -EIO);
		assert_int_equal(smmap_cursor_read(&cm.guarded, buf, sizeof(buf),
						   5), (ssize_t)sizeof(buf));
		assert_true(tl_check_pattern(buf, sizeof(buf), 5, 3));
	}
	cut_mapping_teardown(&cm);
}

/*
 * The handler found before the guard: it reports through a pipe and exits.
 * (The parent checks the report, not the exit code, which valgrind would
 * replace if the child inherited blocks leaked by an earlier failed test.)
 */
static int chain_pipe = -1;

static void on_foreign_bus(int sig)
{
	(void)sig;
	if (write(chain_pipe, "C", 1) != 1)
		_exit(16);
	_exit(42);
}

/* With a handler installed before the guard: the fault goes to it. */
static void test_foreign_fault_chains(void **state)
{
	struct cut_mapping cm;
	char report[8] = { 0 };
	int pfd[2], status;
	pid_t pid;

	(void)state;
	cut_mapping_setup(&cm, "sb-chain");
	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	if (pid == 0) {
		struct sigaction sa;

		close(pfd[0]);
		chain_pipe = pfd[1];
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_foreign_bus;
		sigemptyset(&sa.sa_mask);
		if (sigaction(SIGBUS, &sa, NULL) != 0)
			_exit(8);
		if (smmap_sigbus_install() != 0)
			_exit(9);
		/* child_fault's guarded read must not reach our handler. */
		if (write(chain_pipe, "G", 1) != 1)
			_exit(17);
		child_fault(&cm);
	}
	assert_true(pid > 0);
	close(pfd[1]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(read(pfd[0], report, sizeof(report) - 1) >= 0);
	close(pfd[0]);
	fprintf(stderr, "# child reported \"%s\", status %s %d\n", report,
		WIFEXITED(status) ? "exit" : "signal",
		WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
	assert_true(WIFEXITED(status));
	/* The guarded read did not chain; the raw access did, once. */
	assert_string_equal(report, "GC");
	cut_mapping_teardown(&cm);
}

/*
 * The guard is re-installed when something replaced it: after
 * signal(SIGBUS, SIG_DFL), smmap_sigbus_install() makes guarded copies
 * safe again (without creating a manager).
 */
static void test_reinstall(void **state)
{
	struct cut_mapping cm;
	unsigned char buf[16];

	(void)state;
	cut_mapping_setup(&cm, "sb-reinstall");
	signal(SIGBUS, SIG_DFL);
	assert_int_equal(smmap_sigbus_install(), 0);
	assert_int_equal(smmap_sigbus_install(), 0); /* idempotent */
	assert_int_equal(smmap_cursor_read(&cm.guarded, buf, sizeof(buf),
					   2 * (int64_t)G), -EIO);
	assert_int_equal(tl_stats(cm.m).sigbus_caught, 1);
	assert_false(sigbus_blocked());
	cut_mapping_teardown(&cm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pinned_window_faults),
		cmocka_unit_test(test_short_count_across_windows),
		cmocka_unit_test(test_concurrent_truncation),
		cmocka_unit_test(test_foreign_fault_kills),
		cmocka_unit_test(test_foreign_fault_chains),
		cmocka_unit_test(test_reinstall),
	};

	G = smmap_granularity();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
