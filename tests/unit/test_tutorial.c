/*
 * test_tutorial.c - port of smmap 5.0.1's test_tutorial.py:
 * TestTutorial.test_example, the documented usage scenario, on an 8 MiB
 * file (8,388,608 bytes) with the default sliding manager.
 *
 * Upstream only touches the bytes (its file was zeros); here the file holds
 * a pattern and every byte read is compared with it.
 */
#include "testlib.h"

#include "smmap.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static void expect_pattern(const void *p, size_t n, uint64_t ofs)
{
	const unsigned char *b = p;

	assert_non_null(p);
	if (tl_check_pattern(p, n, ofs, 0))
		return;
	for (size_t i = 0; i < n; i++)
		if (b[i] != tl_pattern(ofs + i, 0))
			fail_msg("byte at file offset %" PRIu64
				 " is 0x%02x, expected 0x%02x",
				 ofs + i, b[i], tl_pattern(ofs + i, 0));
}

static void test_example(void **state)
{
	(void)state;
	const uint64_t fsize = UINT64_C(1024) * 1024 * 8;
	smmap_manager *mman = NULL;
	char *path;
	smmap_cursor c, bc;
	smmap_buffer buf;
	const unsigned char *b;
	unsigned char tail[10];

	assert_int_equal(fsize, 8388608);

	/* mman = smmap.SlidingWindowMapManager() */
	assert_int_equal(smmap_manager_new(&mman, NULL), 0);
	assert_int_equal(smmap_num_file_handles(mman), 0);
	assert_int_equal(smmap_mapped_memory_size(mman), 0);

	path = tl_make_file("test_file", fsize, 0);

	/* c = mman.make_cursor(fc.path): associated, not yet valid */
	assert_int_equal(smmap_cursor_init_path(&c, mman, path), 0);
	assert_true(smmap_cursor_is_associated(&c));
	assert_false(smmap_cursor_is_valid(&c));

	/* c.use_region(): offset 0, "as much as possible" */
	assert_int_equal(smmap_cursor_use_region(&c, 0, 0), 1);
	assert_true(smmap_cursor_is_valid(&c));
	/* The default 1 GiB (64 MiB) window holds the whole file. */
	assert_true(smmap_cursor_size(&c) > 0);
	assert_int_equal(smmap_cursor_size(&c), fsize);
	b = smmap_cursor_buffer(&c);
	assert_non_null(b);
	/* c.buffer()[0], c.buffer()[1:10], c.buffer()[c.size()-1] */
	assert_int_equal(b[0], tl_pattern(0, 0));
	expect_pattern(b + 1, 9, 1);
	assert_int_equal(b[smmap_cursor_size(&c) - 1],
			 tl_pattern(smmap_cursor_size(&c) - 1, 0));
	expect_pattern(b, smmap_cursor_size(&c), 0);

	assert_true(smmap_cursor_ofs_begin(&c) < smmap_cursor_ofs_end(&c));
	assert_true(smmap_cursor_includes_ofs(&c, 100));

	/* Out of bounds: invalid, not an error. */
	assert_int_equal(smmap_cursor_use_region(&c, (int64_t)fsize, 100), 0);
	assert_false(smmap_cursor_is_valid(&c));

	/* Map as much as possible after the first 100 bytes. */
	assert_int_equal(smmap_cursor_use_region(&c, 100, 0), 1);
	assert_true(smmap_cursor_is_valid(&c));
	assert_int_equal(smmap_cursor_ofs_begin(&c), 100);
	assert_int_equal(smmap_cursor_size(&c), fsize - 100);
	expect_pattern(smmap_cursor_buffer(&c), 16, 100);

	/* Free the region: the cursor becomes invalid. */
	smmap_cursor_unuse_region(&c);
	assert_false(smmap_cursor_is_valid(&c));

	/* buf = smmap.SlidingWindowMapBuffer(mman.make_cursor(fc.path)) */
	assert_int_equal(smmap_cursor_init_path(&bc, mman, path), 0);
	smmap_buffer_init(&buf);
	assert_int_equal(smmap_buffer_begin(&buf, &bc, 0, SMMAP_TO_END), 0);
	assert_true(smmap_cursor_is_valid(smmap_buffer_cursor(&buf)));
	assert_int_equal(smmap_buffer_len(&buf), fsize);

	/* buf[0], buf[-1], buf[-10:] */
	assert_int_equal(smmap_buffer_byte(&buf, 0), tl_pattern(0, 0));
	assert_int_equal(smmap_buffer_byte(&buf, -1), tl_pattern(fsize - 1, 0));
	assert_int_equal(smmap_buffer_copy(&buf, tail, -10,
					   (int64_t)smmap_buffer_len(&buf)),
			 10);
	expect_pattern(tail, sizeof(tail), fsize - 10);

	/* Release the resources; the cursor becomes invalid. */
	smmap_buffer_end(&buf);
	assert_false(smmap_cursor_is_valid(smmap_buffer_cursor(&buf)));

	/* buf.begin_access(offset=10) */
	assert_int_equal(smmap_buffer_begin(&buf, NULL, 10, SMMAP_TO_END), 0);
	assert_int_equal(smmap_buffer_len(&buf), fsize - 10);
	/* Port (B5 fixed): buf[0] is the byte at the buffer's offset. */
	assert_int_equal(smmap_buffer_byte(&buf, 0), tl_pattern(10, 0));
	smmap_buffer_end(&buf);

	smmap_cursor_dispose(&bc);
	smmap_cursor_dispose(&c);
	/* One region (the whole file) stayed cached for both cursors. */
	assert_int_equal(smmap_num_file_handles(mman), 1);
	assert_int_equal(smmap_collect(mman), 1);
	assert_int_equal(smmap_num_file_handles(mman), 0);
	assert_int_equal(smmap_mapped_memory_size(mman), 0);
	assert_int_equal(smmap_manager_free(mman), 0);
	free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_example),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
