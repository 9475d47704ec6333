/*
 * test_revalidate.c - files that change underneath (smmap bug B12): grown,
 * shrunk, touched and replaced files, noticed by smmap_file_revalidate() or
 * by the fstat made when a window is mapped.
 */
#include "testlib.h"

#include "smmap.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static uint64_t G;

static smmap_manager *new_manager(uint64_t window)
{
	return tl_manager(SMMAP_SLIDING, (struct tl_opts){ .window = window });
}

static void check_bytes(const smmap_cursor *c, uint64_t ofs, size_t size,
			unsigned salt)
{
	assert_true(smmap_cursor_is_valid(c));
	assert_int_equal(smmap_cursor_ofs_begin(c), ofs);
	assert_int_equal(smmap_cursor_size(c), size);
	assert_true(tl_check_pattern(smmap_cursor_buffer(c), size, ofs, salt));
}

static struct smmap_region_info region(const smmap_cursor *c)
{
	struct smmap_region_info info;

	assert_int_equal(smmap_cursor_region(&info, c), 0);
	return info;
}

/* Append the pattern from the current size up to `size`. */
static void grow_file(const char *path, uint64_t size, unsigned salt)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	struct stat st;
	unsigned char buf[4096];

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	for (uint64_t o = (uint64_t)st.st_size; o < size;) {
		size_t n = size - o < sizeof(buf) ? (size_t)(size - o)
						  : sizeof(buf);

		for (size_t i = 0; i < n; i++)
			buf[i] = tl_pattern(o + i, salt);
		assert_int_equal(pwrite(fd, buf, n, (off_t)o), (ssize_t)n);
		o += n;
	}
	assert_int_equal(close(fd), 0);
}

/* Replace the file at `path` by a new one (rename over it). */
static void replace_file(const char *path, const char *tmpname, uint64_t size,
			 unsigned salt)
{
	char *tmp = tl_make_file(tmpname, size, salt);

	assert_int_equal(rename(tmp, path), 0);
	free(tmp);
}

/* Read the whole file through the cursor and compare. */
static void check_whole_file(smmap_cursor *c, uint64_t size, unsigned salt)
{
	unsigned char *buf = malloc(size + 16);

	assert_non_null(buf);
	assert_int_equal(smmap_cursor_read(c, buf, size + 16, 0), (ssize_t)size);
	assert_true(tl_check_pattern(buf, size, 0, salt));
	free(buf);
}

/*
 * B12: a grown file.  The short window at the old end is retired (it is
 * pinned: it stays readable, and goes at its last unpin); bytes past the
 * old size become readable after revalidation.
 */
static void test_grown_file_revalidate(void **state)
{
	uint64_t w = 2 * G, s0 = w + 100, s1 = 3 * w;
	char *path = tl_make_file("rv-grow", s0, 1);
	smmap_manager *m = new_manager(w);
	struct smmap_stats a, b;
	smmap_cursor c, d;
	smmap_file *f;

	(void)state;
	assert_int_equal(smmap_file_new_path(&f, m, path, 0), 0);
	assert_int_equal(smmap_cursor_init_file(&c, f), 0);
	assert_int_equal(smmap_cursor_init_file(&d, f), 0);
	assert_int_equal(smmap_cursor_use_region(&c, (int64_t)w + 10, 0), 1);
	check_bytes(&c, w + 10, 90, 1);
	assert_int_equal(region(&c).size, 100);

	grow_file(path, s1, 1);
	/* Not noticed yet: the old size is all the cursor knows. */
	assert_int_equal(smmap_file_size(f), s0);
	assert_int_equal(smmap_cursor_use_region(&d, (int64_t)s0 + 50, 0), 0);

	a = tl_stats(m);
	assert_int_equal(smmap_file_revalidate(f, NULL), 1);
	b = tl_stats(m);
	assert_int_equal(smmap_file_size(f), s1);
	assert_int_equal(b.retired, a.retired + 1);
	/* Retired but pinned: still mapped, still readable, not indexed. */
	assert_int_equal(b.mappings, a.mappings);
	check_bytes(&c, w + 10, 90, 1);
	assert_int_equal(region(&c).client_count, 1);

	/* The window past the old end now maps in full. */
	assert_int_equal(smmap_cursor_use_region(&d, (int64_t)s0 + 50, 0), 1);
	check_bytes(&d, s0 + 50, 2 * w - s0 - 50, 1);
	assert_int_equal(region(&d).ofs, w);
	assert_int_equal(region(&d).size, w);
	assert_int_equal(tl_stats(m).misses, b.misses + 1);
	assert_int_equal(tl_stats(m).mappings, b.mappings + 1);
	assert_int_equal(smmap_cursor_use_region(&d, 2 * (int64_t)w + 1, 0), 1);
	check_bytes(&d, 2 * w + 1, w - 1, 1);

	/* The retired region goes at its last unpin. */
	a = tl_stats(m);
	smmap_cursor_unuse_region(&c);
	b = tl_stats(m);
	assert_int_equal(b.mappings, a.mappings - 1);
	assert_int_equal(b.mapped_bytes, a.mapped_bytes - 100);
	/* c now reads the grown file in full. */
	check_whole_file(&c, s1, 1);
	assert_int_equal(smmap_file_revalidate(f, NULL), 0);
	smmap_cursor_dispose(&c);
	smmap_cursor_dispose(&d);
	smmap_file_free(f);
	smmap_collect(m);
	assert_int_equal(tl_stats(m).mappings, 0);
	assert_int_equal(tl_stats(m).mapped_bytes, 0);
	assert_int_equal(smmap_manager_free(m), 0);
	free(path);
}

/* A grown file is also noticed when a new window is mapped. */
static void test_grown_file_noticed_by_mapping(void **state)
{
	uint64_t w = 2 * G, s0 = w + 100, s1 = 3 * w + 7;
	char *path = tl_make_file("rv-grow2", s0, 2);
	smmap_manager *m = new_manager(w);
	smmap_cursor c;

	(void)state;
	assert_int_equal(smmap_cursor_init_path(&c, m, path), 0);
	grow_file(path, s1, 2);
	assert_int_equal(smmap_cursor_use_region(&c, 5, 0), 1);
	check_bytes(&c, 5, w - 5, 2);
	{
		uint64_t size;

		assert_int_equal(smmap_cursor_file_size(&size, &c), 0);
		assert_int_equal(size, s1);
	}
	assert_int_equal(smmap_cursor_use_region(&c, (int64_t)s0 + 50, 0), 1);
	check_bytes(&c, s0 + 50, 2 * w - s0 - 50, 2);
	check_whole_file(&c, s1, 2);
	smmap_cursor_dispose(&c);
	smmap_collect(m);
	assert_int_equal(smmap_manager_free(m), 0);
	free(path);
}

/* A shrunk file: regions past the new end are retired and unmapped. */
static void test_shrunk_file(void **state)
{
	uint64_t s1 = G + G / 2;
	char *path = tl_make_file("rv-shrink", 4 * G, 3);
	smmap_manager *m = new_manager(G);
	struct smmap_stats a, b;
	smmap_cursor c;
	smmap_file *f;

	(void)state;
	assert_int_equal(smmap_file_new_path(&f, m, path, 0), 0);
	assert_int_equal(smmap_cursor_init_file(&c, f), 0);
	for (int64_t i = 0; i < 4; i++)
		assert_int_equal(smmap_cursor_use_region(&c, i * (int64_t)G, 0), 1);
	smmap_cursor_unuse_region(&c);
	assert_int_equal(tl_stats(m).mappings, 4);

	assert_int_equal(truncate(path, (off_t)s1), 0);
	a = tl_stats(m);
	assert_int_equal(smmap_file_revalidate(f, NULL), 1);
	b = tl_stats(m);
	assert_int_equal(b.retired, a.retired + 3);
	assert_int_equal(b.mappings, 1); /* window 0 is intact */
	assert_int_equal(b.mapped_bytes, G);
	assert_int_equal(b.evictions, a.evictions);
	assert_int_equal(b.collected, a.collected);
	assert_int_equal(smmap_file_size(f), s1);

	/* Past the new end: 0, invalid. */
	assert_int_equal(smmap_cursor_use_region(&c, 2 * (int64_t)G, 0), 0);
	assert_false(smmap_cursor_is_valid(&c));
	assert_int_equal(smmap_cursor_use_region(&c, (int64_t)s1, 0), 0);
	assert_int_equal(smmap_cursor_use_region(&c, 3 * (int64_t)G + 5, 0), 0);
	/* Window 0 is still mapped (a hit); window 1 is remapped short. */
	a = tl_stats(m);
	assert_int_equal(smmap_cursor_use_region(&c, 10, 0), 1);
	assert_int_equal(tl_stats(m).hits, a.hits + 1);
	check_bytes(&c, 10, G - 10, 3);
	assert_int_equal(smmap_cursor_use_region(&c, (int64_t)G + 10, 0), 1);
	assert_int_equal(tl_stats(m).misses, a.misses + 1);
	check_bytes(&c, G + 10, G / 2 - 10, 3);
	assert_int_equal(region(&c).size, G / 2);
	check_whole_file(&c, s1, 3);
	assert_int_equal(smmap_file_revalidate(f, NULL), 0);
	smmap_cursor_dispose(&c);
	smmap_file_free(f);
	assert_int_equal(smmap_collect(m), 2);
	assert_int_equal(smmap_manager_free(m), 0);
	free(path);
}

/* A shrunk file is also noticed when a new window is mapped. */
static void test_shrunk_file_noticed_by_mapping(void **state)
{
	uint64_t s1 = G + G / 2;
	char *path = tl_make_file("rv-shrink2", 4 * G, 4);
	smmap_manager *m = new_manager(G);
	smmap_cursor c;
	uint64_t size;

	(void)state;
	assert_int_equal(smmap_cursor_init_path(&c, m, path), 0);
	assert_int_equal(smmap_cursor_use_region(&c, 0, 0), 1);
	smmap_cursor_unuse_region(&c);
	assert_int_equal(truncate(path, (off_t)s1), 0);
	/* Window 3 is within the old size: mapping it finds the new size. */
	assert_int_equal(smmap_cursor_use_region(&c, 3 * (int64_t)G, 0), 0);
	assert_false(smmap_cursor_is_valid(&c));
	assert_int_equal(smmap_cursor_file_size(&size, &c), 0);
	assert_int_equal(size, s1);
	assert_int_equal(smmap_cursor_use_region(&c, (int64_t)G + 1, 0), 1);
	check_bytes(&c, G + 1, G / 2 - 1, 4);
	check_whole_file(&c, s1, 4);
	smmap_cursor_dispose(&c);
	smmap_collect(m);
	assert_int_equal(tl_stats(m).mappings, 0);
	assert_int_equal(smmap_manager_free(m), 0);
	free(path);
}

/*
 * A pinned region that the new size cuts is retired: its cursor still reads
 * the part still in the file, and it is unmapped at the last unpin.
 */
static void test_pinned_retired_region(void **state)
{
	uint64_t w = 2 * G;
	char *path = tl_make_file("rv-pinned", 2 * w, 5);
	smmap_manager *m = new_manager(w);
	struct smmap_stats a, b;
	smmap_cursor c, c2, d;
	smmap_file *f;

	(void)state;
	assert_int_equal(smmap_file_new_path(&f, m, path, 0), 0);
	assert_int_equal(smmap_cursor_init_file(&c, f), 0);
	assert_int_equal(smmap_cursor_init_file(&d, f), 0);
	assert_int_equal(smmap_cursor_use_region(&c, (int64_t)w, 0), 1);
	smmap_cursor_init(&c2, m);
	assert_int_equal(smmap_cursor_copy(&c2, &c), 0); /* pinned twice */
	assert_int_equal(region(&c).client_count, 3);

	assert_int_equal(truncate(path, (off_t)(w + G)), 0);
	a = tl_stats(m);
	assert_int_equal(smmap_file_revalidate(f, NULL), 1);
	b = tl_stats(m);
	assert_int_equal(b.retired, a.retired + 1);
	assert_int_equal(b.mappings, a.mappings); /* pinned: stays mapped */
	assert_int_equal(region(&c).client_count, 2); /* no longer indexed */
	/* The cursor still reads the bytes still in the file. */
	assert_true(tl_check_pattern(smmap_cursor_buffer(&c), G, w, 5));
	assert_int_equal(smmap_cursor_use_region(&c, (int64_t)w + 100, 10), 1);
	check_bytes(&c, w + 100, 10, 5);

	/* New users get a new region of the new length. */
	assert_int_equal(smmap_cursor_use_region(&d, (int64_t)w + 7, 0), 1);
	check_bytes(&d, w + 7, G - 7, 5);
	assert_int_equal(region(&d).size, G);
	assert_int_equal(tl_stats(m).mappings, b.mappings + 1);
	assert_ptr_not_equal(smmap_cursor_map(&d, NULL, NULL),
			     smmap_cursor_map(&c, NULL, NULL));
	smmap_cursor_unuse_region(&d);

	/* First unpin: still one pin left, still mapped. */
	a = tl_stats(m);
	smmap_cursor_unuse_region(&c);
	assert_int_equal(tl_stats(m).mappings, a.mappings);
	assert_int_equal(region(&c2).client_count, 1);
	assert_true(tl_check_pattern(smmap_cursor_buffer(&c2), G, w, 5));
	/* Last unpin: unmapped now (not left idle on the LRU). */
	smmap_cursor_dispose(&c2);
	b = tl_stats(m);
	assert_int_equal(b.mappings, a.mappings - 1);
	assert_int_equal(b.mapped_bytes, a.mapped_bytes - w);
	assert_int_equal(smmap_collect(m), 1); /* only d's region was idle */
	smmap_cursor_dispose(&c);
	smmap_cursor_dispose(&d);
	smmap_file_free(f);
	assert_int_equal(tl_stats(m).mappings, 0);
	assert_int_equal(smmap_manager_free(m), 0);
	free(path);
}

/* An unchanged file: 0, nothing retired, regions kept. */
static void test_unchanged(void **state)
{
	char *path = tl_make_file("rv-same", 3 * G + 5, 6);
	smmap_manager *m = new_manager(G);
	struct smmap_stats a;
	struct stat st;
	smmap_cursor c;
	smmap_file *f;

	(void)state;
	assert_int_equal(smmap_file_new_path(&f, m, path, 0), 0);
	assert_int_equal(smmap_cursor_init_file(&c, f), 0);
	for (int64_t i = 0; i < 4; i++)
		assert_int_equal(smmap_cursor_use_region(&c, i * (int64_t)G, 0), 1);
	smmap_cursor_unuse_region(&c);
	a = tl_stats(m);
	assert_int_equal(smmap_file_revalidate(f, NULL), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(smmap_file_revalidate(f, &st), 0);
	assert_int_equal(tl_stats(m).retired, a.retired);
	assert_int_equal(tl_stats(m).mappings, 4);
	assert_int_equal(smmap_file_size(f), 3 * G + 5);
	for (int64_t i = 0; i < 4; i++) {
		assert_int_equal(smmap_cursor_use_region(&c, i * (int64_t)G, 0), 1);
		check_bytes(&c, (uint64_t)i * G, i < 3 ? G : 5, 6);
	}
	assert_int_equal(tl_stats(m).hits, a.hits + 4);
	assert_int_equal(tl_stats(m).misses, a.misses);
	smmap_cursor_dispose(&c);
	smmap_file_free(f);
	smmap_collect(m);
	assert_int_equal(smmap_manager_free(m), 0);
	free(path);
}

/* New contents of the same size: a change; mappings show the new bytes. */
static void test_touched_same_size(void **state)
{
	uint64_t size = 2 * G + 9;
	char *path = tl_make_file("rv-touch", size, 7);
	smmap_manager *m = new_manager(G);
	struct timespec ts[2] = { { 1000000000, 0 }, { 1000000000, 0 } };
	smmap_cursor c;
	smmap_file *f;
	int fd;

	(void)state;
	assert_int_equal(smmap_file_new_path(&f, m, path, 0), 0);
	assert_int_equal(smmap_cursor_init_file(&c, f), 0);
	check_whole_file(&c, size, 7);
	/* Same size, new content and times. */
	fd = open(path, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	{
		unsigned char *buf = malloc(size);

		assert_non_null(buf);
		for (uint64_t i = 0; i < size; i++)
			buf[i] = tl_pattern(i, 8);
		assert_int_equal(pwrite(fd, buf, size, 0), (ssize_t)size);
		free(buf);
	}
	assert_int_equal(futimens(fd, ts), 0);
	close(fd);
	assert_int_equal(smmap_file_revalidate(f, NULL), 1);
	assert_int_equal(smmap_file_revalidate(f, NULL), 0);
	assert_int_equal(smmap_file_size(f), size);
	check_whole_file(&c, size, 8);
	smmap_cursor_dispose(&c);
	smmap_file_free(f);
	smmap_collect(m);
	assert_int_equal(smmap_manager_free(m), 0);
	free(path);
}

/* A path handle follows a file replaced by rename (revalidate). */
static void test_path_follows_rename(void **state)
{
	char *path = tl_make_file("rv-rename", 3 * G, 10);
	smmap_manager *m = new_manager(G);
	smmap_cursor c, keep;
	smmap_file *f;
	uint64_t size;

	(void)state;
	assert_int_equal(smmap_file_new_path(&f, m, path, 0), 0);
	assert_int_equal(smmap_cursor_init_file(&c, f), 0);
	assert_int_equal(smmap_cursor_init_file(&keep, f), 0);
	check_whole_file(&c, 3 * G, 10);
	/* keep pins the old file's window 0 across the switch. */
	assert_int_equal(smmap_cursor_use_region(&keep, 0, 0), 1);

	replace_file(path, "rv-rename.new", 2 * G + 7, 11);
	assert_int_equal(smmap_file_revalidate(f, NULL), 1);
	assert_int_equal(smmap_file_size(f), 2 * G + 7);
	assert_int_equal(smmap_cursor_file_size(&size, &c), 0);
	assert_int_equal(size, 2 * G + 7);
	assert_int_equal(smmap_cursor_use_region(&c, 5, 0), 1);
	check_bytes(&c, 5, G - 5, 11);
	check_whole_file(&c, 2 * G + 7, 11);
	/* The old mapping is still intact for its cursor. */
	check_bytes(&keep, 0, G, 10);
	assert_int_equal(smmap_file_revalidate(f, NULL), 0);
	smmap_cursor_dispose(&keep);
	smmap_cursor_dispose(&c);
	smmap_file_free(f);
	smmap_collect(m);
	assert_int_equal(tl_stats(m).files, 0);
	assert_int_equal(tl_stats(m).mappings, 0);
	assert_int_equal(smmap_manager_free(m), 0);
	free(path);
}

/*
 * A path handle follows a replaced file also when the change is noticed
 * while mapping a window (the mapping-time fstat), without revalidate.
 */
static void test_path_follows_rename_when_mapping(void **state)
{
	char *path = tl_make_file("rv-rename2", 3 * G, 12);
	smmap_manager *m = new_manager(G);
	smmap_cursor c;
	uint64_t size;
	int ret;

	(void)state;
	assert_int_equal(smmap_cursor_init_path(&c, m, path), 0);
	assert_int_equal(smmap_cursor_use_region(&c, 0, 0), 1);
	check_bytes(&c, 0, G, 12);
	replace_file(path, "rv-rename2.new", 4 * G, 13);
	/* Window 2 is not mapped yet: mapping it opens the new file. */
	ret = smmap_cursor_use_region(&c, 2 * (int64_t)G + 1, 0);
	if (ret != 1)
		fprintf(stderr, "# use_region after rename: %d (%s)\n", ret,
			strerror(-ret));
	assert_int_equal(ret, 1);
	check_bytes(&c, 2 * G + 1, G - 1, 13);
	assert_int_equal(smmap_cursor_file_size(&size, &c), 0);
	assert_int_equal(size, 4 * G);
	smmap_cursor_dispose(&c);
	smmap_collect(m);
	assert_int_equal(smmap_manager_free(m), 0);
	free(path);
}

/* An fd handle names one file for good: another file is -ESTALE. */
static void test_fd_handle_estale(void **state)
{
	char *path = tl_make_file("rv-fd", 3 * G, 14);
	char *other = tl_make_file("rv-fd-other", 2 * G, 15);
	smmap_manager *m = new_manager(G);
	struct smmap_stats a;
	struct stat st;
	smmap_cursor c;
	smmap_file *f;
	int fd = open(path, O_RDONLY | O_CLOEXEC), ofd;

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(smmap_file_new_fd(&f, m, fd), 0);
	assert_int_equal(smmap_cursor_init_file(&c, f), 0);
	assert_int_equal(smmap_cursor_use_region(&c, 0, 0), 1);
	check_bytes(&c, 0, G, 14);

	/*
	 * The path is replaced: the descriptor still names the old file
	 * (whose ctime changed as it lost its last link: 1 or 0, not -ESTALE).
	 */
	replace_file(path, "rv-fd.new", 4 * G, 16);
	a = tl_stats(m);
	assert_in_range(smmap_file_revalidate(f, NULL), 0, 1);
	assert_int_equal(smmap_file_size(f), 3 * G);
	assert_int_equal(tl_stats(m).retired, a.retired);
	assert_int_equal(smmap_file_revalidate(f, NULL), 0);
	/* A caller's stat of what the path now names: -ESTALE. */
	assert_int_equal(stat(path, &st), 0);
	a = tl_stats(m);
	assert_int_equal(smmap_file_revalidate(f, &st), -ESTALE);
	assert_int_equal(smmap_file_size(f), 3 * G); /* left unchanged */
	assert_int_equal(tl_stats(m).retired, a.retired);
	/*
	 * Window 2, not 1: valgrind 3.19 aborts ("aspacem assertion failed:
	 * !is_freeslot(ix)") at munmap when two mappings of one file with
	 * adjacent offsets and addresses were made under different names
	 * (before and after the rename).  Not a library issue.
	 */
	assert_int_equal(smmap_cursor_use_region(&c, 2 * (int64_t)G, 0), 1);
	check_bytes(&c, 2 * G, G, 14);

	/* The descriptor itself now names another file. */
	ofd = open(other, O_RDONLY | O_CLOEXEC);
	assert_true(ofd >= 0);
	assert_int_equal(dup2(ofd, fd), fd);
	close(ofd);
	assert_int_equal(smmap_file_revalidate(f, NULL), -ESTALE);
	assert_int_equal(smmap_file_size(f), 3 * G);
	/* Mapping a new window notices it too. */
	assert_int_equal(smmap_cursor_use_region(&c, (int64_t)G, 0), -ESTALE);
	assert_false(smmap_cursor_is_valid(&c));
	smmap_cursor_dispose(&c);
	smmap_file_free(f);
	smmap_collect(m);
	assert_int_equal(tl_stats(m).mappings, 0);
	assert_int_equal(tl_stats(m).files, 0);
	assert_int_equal(smmap_manager_free(m), 0);
	close(fd);
	free(path);
	free(other);
}

struct path_opener {
	const char *path;
	unsigned opens;
};

static int open_path(void *ctx)
{
	struct path_opener *po = ctx;
	int fd;

	po->opens++;
	fd = open(po->path, O_RDONLY | O_CLOEXEC);
	return fd >= 0 ? fd : -errno;
}

/* An opener handle whose opener now finds another file: -ESTALE. */
static void test_opener_handle_estale(void **state)
{
	char *path = tl_make_file("rv-opener", 3 * G, 17);
	smmap_manager *m = new_manager(G);
	struct path_opener po = { path, 0 };
	struct smmap_opener op = { open_path, &po };
	struct stat st;
	smmap_cursor c;
	smmap_file *f;

	(void)state;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(smmap_file_new_opener(&f, m, &op, &st), 0);
	assert_int_equal(smmap_cursor_init_file(&c, f), 0);
	assert_int_equal(smmap_cursor_use_region(&c, 0, 0), 1);
	check_bytes(&c, 0, G, 17);
	assert_int_equal(po.opens, 1);
	assert_int_equal(smmap_file_revalidate(f, NULL), 0);
	assert_int_equal(po.opens, 2);

	replace_file(path, "rv-opener.new", 3 * G, 18);
	assert_int_equal(smmap_file_revalidate(f, NULL), -ESTALE);
	assert_int_equal(smmap_file_size(f), 3 * G);
	assert_int_equal(smmap_cursor_use_region(&c, (int64_t)G, 0), -ESTALE);
	assert_false(smmap_cursor_is_valid(&c));
	/* Window 0 of the old file is still mapped: a hit, old bytes. */
	assert_int_equal(smmap_cursor_use_region(&c, 1, 0), 1);
	check_bytes(&c, 1, G - 1, 17);
	smmap_cursor_dispose(&c);
	smmap_file_free(f);
	smmap_collect(m);
	assert_int_equal(smmap_manager_free(m), 0);
	free(path);
}

/* revalidate with the caller's struct stat, no system call needed. */
static void test_revalidate_with_stat(void **state)
{
	uint64_t s0 = 2 * G + 1, s1 = 5 * G;
	char *path = tl_make_file("rv-stat", s0, 19);
	smmap_manager *m = new_manager(G);
	struct stat st, fake;
	struct smmap_stats a;
	smmap_cursor c;
	smmap_file *f;

	(void)state;
	assert_int_equal(smmap_file_new_path(&f, m, path, 0), 0);
	assert_int_equal(smmap_cursor_init_file(&c, f), 0);
	assert_int_equal(smmap_cursor_use_region(&c, 2 * (int64_t)G, 0), 1);
	assert_int_equal(smmap_cursor_size(&c), 1);
	smmap_cursor_unuse_region(&c);
	grow_file(path, s1, 19);
	assert_int_equal(stat(path, &st), 0);
	a = tl_stats(m);
	assert_int_equal(smmap_file_revalidate(f, &st), 1);
	assert_int_equal(smmap_file_size(f), s1);
	assert_int_equal(tl_stats(m).retired, a.retired + 1); /* the 1-byte one */
	assert_int_equal(tl_stats(m).mappings, a.mappings - 1);
	assert_int_equal(smmap_file_revalidate(f, &st), 0);
	assert_int_equal(smmap_cursor_use_region(&c, 4 * (int64_t)G + 3, 0), 1);
	check_bytes(&c, 4 * G + 3, G - 3, 19);
	smmap_cursor_unuse_region(&c);

	/* The handle believes the caller: a smaller size retires windows. */
	fake = st;
	fake.st_size = (off_t)(3 * G);
	a = tl_stats(m);
	assert_int_equal(smmap_file_revalidate(f, &fake), 1);
	assert_int_equal(smmap_file_size(f), 3 * G);
	assert_int_equal(tl_stats(m).retired, a.retired + 1); /* window 4 */
	assert_int_equal(smmap_cursor_use_region(&c, 4 * (int64_t)G, 0), 0);
	assert_int_equal(smmap_file_revalidate(f, &st), 1);
	assert_int_equal(smmap_cursor_use_region(&c, 4 * (int64_t)G, 0), 1);
	check_bytes(&c, 4 * G, G, 19);
	smmap_cursor_dispose(&c);
	smmap_file_free(f);
	smmap_collect(m);
	assert_int_equal(tl_stats(m).mappings, 0);
	assert_int_equal(smmap_manager_free(m), 0);
	free(path);
}

/*
 * A buffer begun through a cursor that still pins a window the file no
 * longer reaches (retired but pinned): the offset is past the known end,
 * so -ERANGE and length 0, not a length computed by an unsigned underflow.
 */
static void test_buffer_begin_past_new_end(void **state)
{
	const uint64_t size = 8 * G;
	char *path = tl_make_file("rv-bufshrink", size, 21);
	smmap_manager *m = new_manager(size); /* one window: the whole file */
	smmap_cursor c;
	smmap_buffer b;
	smmap_file *f;
	int ret;

	(void)state;
	assert_int_equal(smmap_file_new_path(&f, m, path, 0), 0);
	assert_int_equal(smmap_cursor_init_file(&c, f), 0);
	assert_int_equal(smmap_cursor_use_region(&c, 0, 0), 1);
	assert_int_equal(truncate(path, (off_t)(2 * G)), 0);
	assert_int_equal(smmap_file_revalidate(f, NULL), 1);
	assert_int_equal(smmap_file_size(f), 2 * G);
	smmap_buffer_init(&b);
	ret = smmap_buffer_begin(&b, &c, 5 * (int64_t)G, SMMAP_TO_END);
	if (ret != -ERANGE)
		fprintf(stderr, "# begin past the new end: %d, length %" PRIu64
			"\n", ret, smmap_buffer_len(&b));
	assert_int_equal(ret, -ERANGE);
	assert_int_equal(smmap_buffer_len(&b), 0);
	/* Within the new size: clamped to it. */
	assert_int_equal(smmap_buffer_begin(&b, &c, (int64_t)G, SMMAP_TO_END), 0);
	assert_int_equal(smmap_buffer_len(&b), G);
	assert_int_equal(smmap_buffer_byte(&b, -1), tl_pattern(2 * G - 1, 21));
	smmap_buffer_end(&b);
	smmap_cursor_dispose(&c);
	smmap_file_free(f);
	smmap_collect(m);
	assert_int_equal(tl_stats(m).mappings, 0);
	assert_int_equal(smmap_manager_free(m), 0);
	free(path);
}

struct flipper {
	smmap_file *f;
	struct stat big, small;
	atomic_bool stop;
	atomic_uint flips;
	atomic_uint bad;
};

static void *flipper_main(void *arg)
{
	struct flipper *fl = arg;

	while (!atomic_load(&fl->stop)) {
		if (smmap_file_revalidate(fl->f, &fl->small) < 0 ||
		    smmap_file_revalidate(fl->f, &fl->big) < 0)
			atomic_fetch_add(&fl->bad, 1);
		atomic_fetch_add(&fl->flips, 1);
	}
	return NULL;
}

/*
 * smmap_buffer_begin() while another thread revalidates the file between
 * two sizes: the buffer is either refused (-ERANGE, the offset is past the
 * small size) or has exactly the length the big size gives; never a length
 * computed from one size for an offset checked against another.
 */
static void test_buffer_begin_concurrent_revalidate(void **state)
{
	const uint64_t size = 8 * G, ofs = 3 * G + 5;
	char *path = tl_make_file("rv-flip", size, 20);
	smmap_manager *m = new_manager(G);
	unsigned iters = tl_slow_variant() ? 20000 : 200000;
	unsigned ok = 0, refused = 0, bad = 0;
	struct flipper fl;
	pthread_t th;
	smmap_cursor c;
	smmap_buffer b;
	unsigned i;

	(void)state;
	memset(&fl, 0, sizeof(fl));
	assert_int_equal(smmap_file_new_path(&fl.f, m, path, 0), 0);
	assert_int_equal(stat(path, &fl.big), 0);
	fl.small = fl.big;
	fl.small.st_size = (off_t)G;
	assert_int_equal(smmap_cursor_init_file(&c, fl.f), 0);
	smmap_buffer_init(&b);
	assert_int_equal(pthread_create(&th, NULL, flipper_main, &fl), 0);
	for (i = 0; i < iters && bad == 0; i++) {
		int ret = smmap_buffer_begin(&b, &c, (int64_t)ofs, SMMAP_TO_END);

		if (ret == 0 && smmap_buffer_len(&b) == size - ofs) {
			ok++;
		} else if (ret == -ERANGE && smmap_buffer_len(&b) == 0) {
			refused++;
		} else {
			bad++;
			fprintf(stderr, "# iteration %u: begin %d, length %" PRIu64
				" (expected %" PRIu64 " or -ERANGE)\n", i, ret,
				smmap_buffer_len(&b), size - ofs);
		}
		smmap_buffer_end(&b);
	}
	atomic_store(&fl.stop, true);
	assert_int_equal(pthread_join(th, NULL), 0);
	fprintf(stderr, "# %u begins: %u ok, %u refused, %u bad; %u flips\n", i,
		ok, refused, bad, (unsigned)fl.flips);
	assert_int_equal(fl.bad, 0);
	assert_int_equal(bad, 0);
	smmap_cursor_dispose(&c);
	assert_int_equal(smmap_file_revalidate(fl.f, &fl.big), 0);
	smmap_file_free(fl.f);
	smmap_collect(m);
	assert_int_equal(tl_stats(m).mappings, 0);
	assert_int_equal(smmap_manager_free(m), 0);
	free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_grown_file_revalidate),
		cmocka_unit_test(test_grown_file_noticed_by_mapping),
		cmocka_unit_test(test_shrunk_file),
		cmocka_unit_test(test_shrunk_file_noticed_by_mapping),
		cmocka_unit_test(test_pinned_retired_region),
		cmocka_unit_test(test_unchanged),
		cmocka_unit_test(test_touched_same_size),
		cmocka_unit_test(test_path_follows_rename),
		cmocka_unit_test(test_path_follows_rename_when_mapping),
		cmocka_unit_test(test_fd_handle_estale),
		cmocka_unit_test(test_opener_handle_estale),
		cmocka_unit_test(test_revalidate_with_stat),
		cmocka_unit_test(test_buffer_begin_past_new_end),
		cmocka_unit_test(test_buffer_begin_concurrent_revalidate),
	};

	G = smmap_granularity();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
