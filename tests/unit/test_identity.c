/*
 * test_identity.c - files keyed by identity (st_dev, st_ino), refcounted
 * file entries (smmap bug B3) and cursor copies (smmap bug B4).
 */
#include "testlib.h"

#include "smmap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t G;

static smmap_manager *new_manager(uint64_t window)
{
	return tl_manager(SMMAP_SLIDING, (struct tl_opts){ .window = window });
}

static unsigned client_count(const smmap_cursor *c)
{
	struct smmap_region_info info;

	assert_int_equal(smmap_cursor_region(&info, c), 0);
	return info.client_count;
}

/*
 * A path handle, an fd handle, a hard link and a symlink on the same file
 * share one file entry and one mapping per window.
 */
static void test_path_fd_link_share(void **state)
{
	char *path = tl_make_file("id-share", 4 * G + 10, 1);
	char *other = tl_make_file("id-other", 4 * G, 2);
	char link_path[512], sym_path[512];
	smmap_manager *m = new_manager(G);
	smmap_file *fp, *ffd, *flink, *fsym, *fother;
	smmap_cursor cp, cfd, clink, csym, cother;
	struct smmap_stats a, b;
	int fd;

	(void)state;
	snprintf(link_path, sizeof(link_path), "%s/id-share-link", tl_tmpdir());
	snprintf(sym_path, sizeof(sym_path), "%s/id-share-sym", tl_tmpdir());
	assert_int_equal(link(path, link_path), 0);
	assert_int_equal(symlink(path, sym_path), 0);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);

	assert_int_equal(smmap_file_new_path(&fp, m, path, 0), 0);
	assert_int_equal(tl_stats(m).files, 1);
	assert_int_equal(smmap_file_new_fd(&ffd, m, fd), 0);
	assert_int_equal(smmap_file_new_path(&flink, m, link_path, 0), 0);
	assert_int_equal(smmap_file_new_path(&fsym, m, sym_path, 0), 0);
	assert_int_equal(tl_stats(m).files, 1); /* one identity */
	assert_int_equal(smmap_file_new_path(&fother, m, other, 0), 0);
	assert_int_equal(tl_stats(m).files, 2);

	assert_int_equal(smmap_cursor_init_file(&cp, fp), 0);
	assert_int_equal(smmap_cursor_init_file(&cfd, ffd), 0);
	assert_int_equal(smmap_cursor_init_file(&clink, flink), 0);
	assert_int_equal(smmap_cursor_init_file(&csym, fsym), 0);
	assert_int_equal(smmap_cursor_init_file(&cother, fother), 0);

	/* The path handle maps window 1. */
	a = tl_stats(m);
	assert_int_equal(smmap_cursor_use_region(&cp, (int64_t)G + 5, 0), 1);
	tl_check_cursor(&cp, G + 5, 1);
	b = tl_stats(m);
	assert_int_equal(b.misses, a.misses + 1);
	assert_int_equal(smmap_num_file_handles(m), 1);
	assert_int_equal(smmap_num_open_files(m), 1);

	/* The fd handle, the hard link and the symlink reuse it. */
	assert_int_equal(smmap_cursor_use_region(&cfd, (int64_t)G + 100, 0), 1);
	assert_int_equal(smmap_cursor_use_region(&clink, (int64_t)G, 0), 1);
	assert_int_equal(smmap_cursor_use_region(&csym, 2 * (int64_t)G - 1, 0),
			 1);
	tl_check_cursor(&cfd, G + 100, 1);
	tl_check_cursor(&clink, G, 1);
	tl_check_cursor(&csym, 2 * G - 1, 1);
	b = tl_stats(m);
	assert_int_equal(b.misses, a.misses + 1);
	assert_int_equal(b.hits, a.hits + 3);
	assert_int_equal(b.mmap_calls, a.mmap_calls + 1);
	assert_int_equal(smmap_num_file_handles(m), 1);
	assert_int_equal(smmap_num_open_files(m), 1);
	assert_int_equal(smmap_mapped_memory_size(m), G);
	/* Literally the same mapping. */
	{
		uint64_t o1, o2;
		size_t l1, l2;
		const void *p1 = smmap_cursor_map(&cp, &o1, &l1);
		const void *p2 = smmap_cursor_map(&cfd, &o2, &l2);

		assert_ptr_equal(p1, p2);
		assert_int_equal(o1, o2);
		assert_int_equal(l1, l2);
		assert_ptr_equal(smmap_cursor_map(&clink, NULL, NULL), p1);
		assert_ptr_equal(smmap_cursor_map(&csym, NULL, NULL), p1);
	}
	assert_int_equal(client_count(&cp), 5); /* manager + 4 cursors */

	/* Another file is another entry: a miss. */
	assert_int_equal(smmap_cursor_use_region(&cother, (int64_t)G + 5, 0),
			 1);
	tl_check_cursor(&cother, G + 5, 2);
	b = tl_stats(m);
	assert_int_equal(b.misses, a.misses + 2);
	assert_int_equal(smmap_num_file_handles(m), 2);
	assert_int_equal(smmap_num_open_files(m), 2);

	/* Each handle keeps its own way to name the file. */
	{
		const char *pp;
		int cfd_fd;

		assert_int_equal(smmap_cursor_path(&pp, &cp), 0);
		assert_string_equal(pp, path);
		assert_int_equal(smmap_cursor_path(&pp, &clink), 0);
		assert_string_equal(pp, link_path);
		assert_int_equal(smmap_cursor_path(&pp, &cfd), -EINVAL);
		assert_int_equal(smmap_cursor_fd(&cfd_fd, &cfd), 0);
		assert_int_equal(cfd_fd, fd);
		assert_int_equal(smmap_cursor_fd(&cfd_fd, &cp), -EINVAL);
	}

	/* The fd handle maps window 3; the path handle then hits it. */
	assert_int_equal(smmap_cursor_use_region(&cfd, 3 * (int64_t)G, 0), 1);
	assert_int_equal(smmap_cursor_use_region(&cp, 3 * (int64_t)G + 1, 0), 1);
	tl_check_cursor(&cp, 3 * G + 1, 1);
	b = tl_stats(m);
	assert_int_equal(b.misses, a.misses + 3);
	assert_int_equal(b.hits, a.hits + 4);
	assert_int_equal(smmap_num_file_handles(m), 3);

	smmap_cursor_dispose(&cp);
	smmap_cursor_dispose(&cfd);
	smmap_cursor_dispose(&clink);
	smmap_cursor_dispose(&csym);
	smmap_cursor_dispose(&cother);
	assert_int_equal(smmap_manager_free(m), -EBUSY); /* handles alive */
	smmap_file_free(fp);
	smmap_file_free(ffd);
	smmap_file_free(flink);
	smmap_file_free(fsym);
	smmap_file_free(fother);
	assert_int_equal(smmap_collect(m), 3);
	assert_int_equal(tl_stats(m).files, 0);
	assert_int_equal(tl_stats(m).mappings, 0);
	assert_int_equal(smmap_manager_free(m), 0);
	close(fd);
	free(path);
	free(other);
}

/* Handles made by smmap_cursor_init_path/fd share entries too. */
static void test_make_cursor_shares(void **state)
{
	char *path = tl_make_file("id-make", 2 * G, 3);
	smmap_manager *m = new_manager(G);
	smmap_cursor a, b;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(smmap_cursor_init_path(&a, m, path), 0);
	assert_int_equal(smmap_cursor_init_fd(&b, m, fd), 0);
	assert_true(smmap_cursor_is_associated(&a));
	assert_true(smmap_cursor_is_associated(&b));
	assert_false(smmap_cursor_is_valid(&a));
	assert_int_equal(tl_stats(m).files, 1);
	assert_int_equal(smmap_cursor_use_region(&a, 10, 0), 1);
	assert_int_equal(smmap_cursor_use_region(&b, 20, 0), 1);
	assert_int_equal(tl_stats(m).mappings, 1);
	assert_int_equal(tl_stats(m).hits, 1);
	assert_int_equal(client_count(&a), 3);
	tl_check_cursor(&b, 20, 3);
	smmap_cursor_dispose(&a);
	smmap_cursor_dispose(&b);
	assert_int_equal(smmap_collect(m), 1);
	assert_int_equal(tl_stats(m).files, 0);
	assert_int_equal(smmap_manager_free(m), 0);
	close(fd);
	free(path);
}

/*
 * B3: destroying one of two cursors on a file, while the file has no
 * region, must not orphan the survivor: its regions stay counted, in
 * num_open_files, collectable, and shared with later cursors.
 */
static void test_refcounted_entries(void **state)
{
	char *path = tl_make_file("id-b3", 4 * G, 4);
	smmap_manager *m = new_manager(G);
	smmap_cursor c1, c2, c3;
	struct smmap_stats a;

	(void)state;
	assert_int_equal(smmap_cursor_init_path(&c1, m, path), 0);
	assert_int_equal(smmap_cursor_init_path(&c2, m, path), 0);
	assert_int_equal(tl_stats(m).files, 1);
	/* c1 goes away while the entry has no regions (smmap drops it). */
	smmap_cursor_dispose(&c1);
	assert_false(smmap_cursor_is_associated(&c1));
	smmap_cursor_dispose(&c1); /* idempotent */
	assert_int_equal(tl_stats(m).files, 1);

	for (int64_t i = 0; i < 3; i++) {
		assert_int_equal(smmap_cursor_use_region(&c2, i * (int64_t)G, 0), 1);
		tl_check_cursor(&c2, (uint64_t)i * G, 4);
	}
	assert_int_equal(smmap_num_file_handles(m), 3);
	assert_int_equal(smmap_mapped_memory_size(m), 3 * G);
	assert_int_equal(smmap_num_open_files(m), 1);

	/* A new cursor on the same path shares the entry and its regions. */
	assert_int_equal(smmap_cursor_init_path(&c3, m, path), 0);
	assert_int_equal(tl_stats(m).files, 1);
	a = tl_stats(m);
	assert_int_equal(smmap_cursor_use_region(&c3, (int64_t)G + 3, 0), 1);
	tl_check_cursor(&c3, G + 3, 4);
	assert_int_equal(tl_stats(m).hits, a.hits + 1);
	assert_int_equal(tl_stats(m).misses, a.misses);
	assert_int_equal(smmap_num_file_handles(m), 3);

	/* Destroy c2 while c3 uses the file: still exact. */
	smmap_cursor_dispose(&c2);
	assert_int_equal(tl_stats(m).files, 1);
	assert_int_equal(smmap_num_file_handles(m), 3);
	assert_int_equal(smmap_num_open_files(m), 1);
	tl_check_cursor(&c3, G + 3, 4);
	/* collect frees the two unused windows, not c3's. */
	assert_int_equal(smmap_collect(m), 2);
	assert_int_equal(smmap_num_file_handles(m), 1);
	assert_int_equal(smmap_mapped_memory_size(m), G);
	assert_int_equal(smmap_num_open_files(m), 1);
	assert_int_equal(client_count(&c3), 2);
	tl_check_cursor(&c3, G + 3, 4);

	/* A cursor made after all the others went away gets a fresh start. */
	smmap_cursor_dispose(&c3);
	assert_int_equal(tl_stats(m).files, 1); /* the idle region holds it */
	assert_int_equal(smmap_collect(m), 1);
	assert_int_equal(tl_stats(m).files, 0);
	assert_int_equal(smmap_num_open_files(m), 0);
	assert_int_equal(smmap_mapped_memory_size(m), 0);
	assert_int_equal(smmap_cursor_init_path(&c1, m, path), 0);
	assert_int_equal(smmap_cursor_use_region(&c1, 0, 0), 1);
	tl_check_cursor(&c1, 0, 4);
	assert_int_equal(tl_stats(m).files, 1);
	smmap_cursor_dispose(&c1);
	assert_int_equal(smmap_collect(m), 1);
	assert_int_equal(tl_stats(m).files, 0);
	assert_int_equal(smmap_manager_free(m), 0);
	free(path);
}

/*
 * B4: a copy shares the file, pins the same region once more, and maps new
 * regions of its own.
 */
static void test_cursor_copy(void **state)
{
	char *path = tl_make_file("id-b4", 4 * G, 5);
	smmap_manager *m = new_manager(G);
	smmap_cursor src, dst, u, d2;
	uint64_t fsize;
	const char *p;
	struct smmap_stats a;

	(void)state;
	assert_int_equal(smmap_cursor_init_path(&src, m, path), 0);
	assert_int_equal(smmap_cursor_use_region(&src, (int64_t)G + 7, 100), 1);
	assert_int_equal(client_count(&src), 2);

	smmap_cursor_init(&dst, m);
	assert_int_equal(smmap_cursor_copy(&dst, &src), 0);
	assert_true(smmap_cursor_is_associated(&dst));
	assert_true(smmap_cursor_is_valid(&dst));
	assert_ptr_equal(smmap_cursor_file(&dst), smmap_cursor_file(&src));
	assert_ptr_equal(smmap_cursor_buffer(&dst), smmap_cursor_buffer(&src));
	assert_int_equal(smmap_cursor_ofs_begin(&dst), G + 7);
	assert_int_equal(smmap_cursor_size(&dst), 100);
	tl_check_cursor(&dst, G + 7, 5);
	assert_int_equal(client_count(&src), 3);
	assert_int_equal(client_count(&dst), 3);
	assert_int_equal(smmap_cursor_file_size(&fsize, &dst), 0);
	assert_int_equal(fsize, 4 * G);
	assert_int_equal(smmap_cursor_path(&p, &dst), 0);
	assert_string_equal(p, path);
	assert_int_equal(smmap_num_file_handles(m), 1);

	/* The copy maps a window of its own. */
	a = tl_stats(m);
	assert_int_equal(smmap_cursor_use_region(&dst, 3 * (int64_t)G, 0), 1);
	tl_check_cursor(&dst, 3 * G, 5);
	assert_int_equal(tl_stats(m).misses, a.misses + 1);
	assert_int_equal(smmap_num_file_handles(m), 2);
	assert_int_equal(client_count(&src), 2); /* dst's pin went along */
	assert_int_equal(client_count(&dst), 2);

	/* The original survives the copy's disposal. */
	smmap_cursor_dispose(&dst);
	assert_false(smmap_cursor_is_associated(&dst));
	smmap_cursor_dispose(&dst); /* idempotent */
	tl_check_cursor(&src, G + 7, 5);
	assert_int_equal(client_count(&src), 2);
	assert_int_equal(smmap_cursor_use_region(&src, 2 * (int64_t)G, 0), 1);
	tl_check_cursor(&src, 2 * G, 5);

	/* Copying into an associated, valid cursor disposes it first. */
	assert_int_equal(smmap_cursor_init_path(&d2, m, path), 0);
	assert_int_equal(smmap_cursor_use_region(&d2, 0, 0), 1);
	{
		smmap_cursor probe;

		assert_int_equal(smmap_cursor_init_path(&probe, m, path), 0);
		assert_int_equal(smmap_cursor_use_region(&probe, 0, 0), 1);
		assert_int_equal(client_count(&probe), 3);
		assert_int_equal(smmap_cursor_copy(&d2, &src), 0);
		assert_int_equal(client_count(&probe), 2); /* d2 let go */
		assert_int_equal(client_count(&src), 3);
		tl_check_cursor(&d2, 2 * G, 5);
		smmap_cursor_dispose(&probe);
	}
	/* A copy of a copy. */
	smmap_cursor_init(&dst, m);
	assert_int_equal(smmap_cursor_copy(&dst, &d2), 0);
	assert_int_equal(client_count(&src), 4);
	smmap_cursor_dispose(&d2);
	assert_int_equal(client_count(&src), 3);
	tl_check_cursor(&dst, 2 * G, 5);
	smmap_cursor_dispose(&dst);

	/* A copy onto itself is refused and harmless. */
	assert_int_equal(smmap_cursor_copy(&src, &src), -EINVAL);
	assert_int_equal(client_count(&src), 2);
	tl_check_cursor(&src, 2 * G, 5);

	/* Copying from an associated but invalid cursor. */
	smmap_cursor_unuse_region(&src);
	smmap_cursor_init(&dst, m);
	assert_int_equal(smmap_cursor_copy(&dst, &src), 0);
	assert_true(smmap_cursor_is_associated(&dst));
	assert_false(smmap_cursor_is_valid(&dst));
	assert_int_equal(smmap_cursor_use_region(&dst, (int64_t)G, 0), 1);
	tl_check_cursor(&dst, G, 5);
	smmap_cursor_dispose(&dst);

	/* Copying from an unassociated cursor (smmap: TypeError). */
	smmap_cursor_init(&u, m);
	assert_int_equal(smmap_cursor_init_path(&dst, m, path), 0);
	assert_int_equal(smmap_cursor_use_region(&dst, 0, 0), 1);
	assert_int_equal(smmap_cursor_copy(&dst, &u), 0);
	assert_false(smmap_cursor_is_associated(&dst));
	assert_false(smmap_cursor_is_valid(&dst));
	assert_null(smmap_cursor_buffer(&dst));
	assert_null(smmap_cursor_file(&dst));
	assert_int_equal(smmap_cursor_use_region(&dst, 0, 0), -EINVAL);
	assert_int_equal(smmap_cursor_file_size(&fsize, &dst), -EINVAL);
	smmap_cursor_dispose(&dst);
	smmap_cursor_dispose(&dst);
	smmap_cursor_dispose(&u);

	smmap_cursor_dispose(&src);
	smmap_cursor_dispose(&src);
	/* Every reference is gone: nothing pinned, nothing leaked. */
	assert_int_equal(smmap_collect(m), 4);
	assert_int_equal(tl_stats(m).mappings, 0);
	assert_int_equal(tl_stats(m).files, 0);
	assert_int_equal(smmap_manager_free(m), 0);
	free(path);
}

/* A copy of an fd cursor keeps the borrowed descriptor. */
static void test_copy_fd_cursor(void **state)
{
	char *path = tl_make_file("id-b4-fd", 2 * G, 6);
	smmap_manager *m = new_manager(G);
	smmap_cursor src, dst;
	int fd = open(path, O_RDONLY | O_CLOEXEC), got = -1;

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(smmap_cursor_init_fd(&src, m, fd), 0);
	smmap_cursor_init(&dst, m);
	assert_int_equal(smmap_cursor_copy(&dst, &src), 0);
	assert_int_equal(smmap_cursor_fd(&got, &dst), 0);
	assert_int_equal(got, fd);
	smmap_cursor_dispose(&src); /* the copy holds the handle */
	assert_int_equal(smmap_cursor_use_region(&dst, (int64_t)G + 1, 0), 1);
	tl_check_cursor(&dst, G + 1, 6);
	assert_int_equal(smmap_manager_free(m), -EBUSY);
	smmap_cursor_dispose(&dst);
	assert_int_equal(smmap_collect(m), 1);
	assert_int_equal(smmap_manager_free(m), 0);
	/* The borrowed descriptor was not closed by the library. */
	assert_true(fcntl(fd, F_GETFD) >= 0);
	close(fd);
	free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_path_fd_link_share),
		cmocka_unit_test(test_make_cursor_shares),
		cmocka_unit_test(test_refcounted_entries),
		cmocka_unit_test(test_cursor_copy),
		cmocka_unit_test(test_copy_fd_cursor),
	};

	G = smmap_granularity();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
