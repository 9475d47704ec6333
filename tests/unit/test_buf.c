/*
 * test_buf.c - port of smmap 5.0.1's test_buf.py (class TestBuf):
 * test_basics, including its performance phase.
 *
 * Upstream numbers: file 8,005,195 bytes; managers "optimal" (sliding
 * defaults), "worst case" (window 80,051, max memory 2,668,398, 15
 * handles) and "static optimal" (static defaults), shared by the whole
 * test; 100 accesses per mode, single bytes and slices, for path and fd.
 * The file holds a pattern, not zeros, and every byte read is compared
 * with the file's content.
 *
 * Port differences, commented where they change an assertion: buffer
 * indices are relative to the buffer's offset (B5 fixed), errors are
 * negative errno values instead of ValueError/False, random positions stay
 * below the file size (B16).
 */
#include "testlib.h"

#include "smmap.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------
 * helpers
 * --------------------------------------------------------------------- */

static smmap_manager *new_manager(enum smmap_policy policy,
				  uint64_t window_size, uint64_t max_mapped,
				  uint64_t max_handles)
{
	return tl_manager(policy, (struct tl_opts){ .window = window_size,
						  .max_mapped = max_mapped,
						  .max_handles = max_handles });
}

/* buf[start:end] must be data[base + start : base + end]. */
static void expect_slice(smmap_buffer *buf, unsigned char *tmp, int64_t start,
			 int64_t end, const unsigned char *data, uint64_t base)
{
	int64_t len = (int64_t)smmap_buffer_len(buf);
	int64_t s = start < 0 ? start + len : start;
	int64_t e = end < 0 ? end + len : end;

	assert_int_equal(smmap_buffer_copy(buf, tmp, start, end), e - s);
	tl_expect_bytes(tmp, data + base + (uint64_t)s, (size_t)(e - s),
		     base + (uint64_t)s);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------------
 * test_basics
 * --------------------------------------------------------------------- */

static void test_basics(void **state)
{
	(void)state;
	const uint64_t fsize = TL_WINDOW_TEST_SIZE;
	char *path = tl_make_file("buffer_test", fsize, 0);
	uint64_t len = 0;
	/* data = open(fc.path, 'rb').read() */
	unsigned char *data = tl_read_file(path, &len);
	unsigned char *tmp = malloc((size_t)fsize);
	smmap_manager *man_optimal = new_manager(SMMAP_SLIDING, 0, 0, 0);
	smmap_manager *man_worst_case = new_manager(
		SMMAP_SLIDING, fsize / 100, fsize / 3, 15);
	smmap_manager *static_man = new_manager(SMMAP_STATIC, 0, 0, 0);
	const int64_t offset = 100;
	smmap_cursor c, unassoc;
	smmap_buffer buf;
	int fd;

	assert_non_null(tmp);
	assert_int_equal(len, fsize);
	assert_true(tl_check_pattern(data, (size_t)len, 0, 0));
	assert_int_equal(fsize / 100, 80051);
	assert_int_equal(fsize / 3, 2668398);

	/* 1. invalid arguments fail upon construction */
	assert_int_equal(smmap_cursor_init_path(&c, man_optimal, path), 0);
	smmap_cursor_init(&unassoc, man_optimal); /* type(c)() */
	smmap_buffer_init(&buf);
	/* SlidingWindowMapBuffer(type(c)()): ValueError -> -EINVAL */
	assert_int_equal(smmap_buffer_begin(&buf, &unassoc, 0, SMMAP_TO_END),
			 -EINVAL);
	assert_int_equal(smmap_buffer_len(&buf), 0);
	/* SlidingWindowMapBuffer(c, fc.size): ValueError -> -ERANGE */
	smmap_buffer_init(&buf);
	assert_int_equal(smmap_buffer_begin(&buf, &c, (int64_t)fsize,
					    SMMAP_TO_END),
			 -ERANGE);
	assert_int_equal(smmap_buffer_len(&buf), 0);
	assert_false(smmap_cursor_is_valid(&c));
	smmap_cursor_dispose(&unassoc);

	/* 2. uninitialised buffers (B19: a length of 0, not AttributeError) */
	smmap_buffer_init(&buf);
	assert_null(smmap_buffer_cursor(&buf));
	assert_int_equal(smmap_buffer_len(&buf), 0);
	/* end access can be called any time */
	smmap_buffer_end(&buf);
	smmap_buffer_end(&buf);
	assert_int_equal(smmap_buffer_len(&buf), 0);
	/* Port: accessors of a buffer without a cursor fail cleanly. */
	assert_int_equal(smmap_buffer_byte(&buf, 0), -EINVAL);
	assert_int_equal(smmap_buffer_copy(&buf, tmp, 0, 1), -EINVAL);

	/* 3. begin access can revive it, if the offset is suitable */
	assert_int_equal(smmap_buffer_begin(&buf, &c, (int64_t)fsize,
					    SMMAP_TO_END),
			 -ERANGE); /* upstream: == False */
	assert_int_equal(smmap_buffer_len(&buf), 0); /* B20 fixed */
	assert_int_equal(smmap_buffer_begin(&buf, &c, offset, SMMAP_TO_END), 0);
	assert_ptr_equal(smmap_buffer_cursor(&buf), &c);
	assert_int_equal(smmap_buffer_len(&buf), fsize - (uint64_t)offset);
	assert_true(smmap_cursor_is_valid(smmap_buffer_cursor(&buf)));
	/*
	 * Port (B5 fixed): indices are relative to the buffer's offset, so
	 * buf[0] is file byte 100.  Upstream's data[offset] == buf[0] held
	 * only because its file was all zeros (its buffer read data[0]).
	 */
	assert_int_equal(smmap_buffer_byte(&buf, 0), data[offset]);
	assert_true(data[offset] != data[0]);
	expect_slice(&buf, tmp, 0, offset, data, (uint64_t)offset);
	assert_int_equal(smmap_buffer_byte(&buf, -1), data[fsize - 1]);
	assert_int_equal(smmap_buffer_byte(&buf, -(int64_t)(fsize - 100)),
			 data[offset]);
	/* Port: out of range is an error, not a crash or a hang (B6). */
	assert_int_equal(smmap_buffer_byte(&buf, (int64_t)(fsize - 100)),
			 -ERANGE);
	assert_int_equal(smmap_buffer_byte(&buf, -(int64_t)(fsize - 99)),
			 -ERANGE);
	assert_int_equal(smmap_buffer_copy(&buf, tmp, 5, 3), -EINVAL);
	assert_int_equal(smmap_buffer_copy(&buf, tmp, 0,
					   (int64_t)(fsize - 99)),
			 -ERANGE);

	/* 4. empty begin access keeps the cursor but alters the offset */
	assert_int_equal(smmap_buffer_begin(&buf, NULL, 0, SMMAP_TO_END), 0);
	assert_int_equal(smmap_buffer_len(&buf), fsize);
	assert_true(smmap_cursor_is_valid(smmap_buffer_cursor(&buf)));

	/* 5. simple access (offset 0 now: buf[i] is data[i]) */
	assert_int_equal(smmap_buffer_byte(&buf, 0), data[0]);
	assert_int_equal(smmap_buffer_byte(&buf, offset), data[offset]);
	expect_slice(&buf, tmp, 0, offset, data, 0);
	expect_slice(&buf, tmp, offset, offset * 2, data, 0);

	/* negative indices, partial slices */
	{
		int64_t blen = (int64_t)smmap_buffer_len(&buf);

		assert_int_equal(smmap_buffer_byte(&buf, -1),
				 smmap_buffer_byte(&buf, blen - 1));
		assert_int_equal(smmap_buffer_byte(&buf, -1), data[fsize - 1]);
		/* buf[-10:] == buf[len(buf)-10:len(buf)] */
		expect_slice(&buf, tmp, -10, blen, data, 0);
		expect_slice(&buf, tmp, blen - 10, blen, data, 0);
		/* and the whole buffer in one slice */
		expect_slice(&buf, tmp, 0, blen, data, 0);
	}

	/* 6. end access makes its cursor invalid, but it stays associated */
	smmap_buffer_end(&buf);
	assert_int_equal(smmap_buffer_len(&buf), 0);
	assert_false(smmap_cursor_is_valid(smmap_buffer_cursor(&buf)));
	assert_true(smmap_cursor_is_associated(smmap_buffer_cursor(&buf)));

	/* 7. an empty begin access fixes it up again */
	assert_int_equal(smmap_buffer_begin(&buf, NULL, 0, SMMAP_TO_END), 0);
	assert_true(smmap_cursor_is_valid(smmap_buffer_cursor(&buf)));

	/* 8. del(buf); del(c): the region stays cached */
	smmap_buffer_end(&buf);
	smmap_cursor_dispose(&c);
	assert_int_equal(smmap_num_file_handles(man_optimal), 1);

	/*
	 * 9. PERFORMANCE: random access through a full buffer, with an
	 * optimal manager, one that produces small mappings only, and the
	 * static one.
	 */
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	tl_srand(2);
	for (int item = 0; item < 2; item++) {
		static const char *const man_ids[] = { "optimal", "worst case",
						       "static optimal" };
		smmap_manager *const managers[] = { man_optimal, man_worst_case,
						    static_man };

		for (int mi = 0; mi < 3; mi++) {
			smmap_manager *manager = managers[mi];
			const int max_num_accesses = 100;
			smmap_cursor cur;

			/* buf = SlidingWindowMapBuffer(manager.make_cursor(item)) */
			if (item == 0)
				assert_int_equal(smmap_cursor_init_path(
							 &cur, manager, path),
						 0);
			else
				assert_int_equal(smmap_cursor_init_fd(&cur,
								      manager, fd),
						 0);
			smmap_buffer_init(&buf);
			assert_int_equal(smmap_buffer_begin(&buf, &cur, 0,
							    SMMAP_TO_END),
					 0);
			assert_int_equal(smmap_num_file_handles(manager), 1);

			for (int access_mode = 0; access_mode < 2;
			     access_mode++) {
				uint64_t num_bytes = 0;
				double st, elapsed;

				st = now_s();
				assert_int_equal(smmap_buffer_begin(&buf, NULL, 0,
								    SMMAP_TO_END),
						 0);
				assert_int_equal(smmap_buffer_len(&buf), fsize);
				for (int n = 0; n < max_num_accesses; n++) {
					if (access_mode) {
						/*
						 * Slices: bounds in [0, fsize]
						 * as upstream; an empty slice
						 * at fsize is valid.
						 */
						uint64_t ofs_start =
							tl_rand_range(0, fsize);
						uint64_t ofs_end = tl_rand_range(
							ofs_start, fsize);
						ssize_t got = smmap_buffer_copy(
							&buf, tmp,
							(int64_t)ofs_start,
							(int64_t)ofs_end);

						assert_int_equal(got,
								 (ssize_t)(ofs_end -
									   ofs_start));
						tl_expect_bytes(tmp, data + ofs_start,
							     (size_t)got,
							     ofs_start);
						num_bytes += (uint64_t)got;
					} else { /* single bytes */
						/*
						 * B16: upstream's randint(0,
						 * fsize) could pick fsize and
						 * crash; stay in the file.
						 */
						uint64_t pos =
							tl_rand_range(0, fsize - 1);

						assert_int_equal(
							smmap_buffer_byte(
								&buf,
								(int64_t)pos),
							data[pos]);
						num_bytes += 1;
					}
					assert_true(smmap_max_file_handles(manager) >=
						    smmap_num_file_handles(manager));
				}
				smmap_buffer_end(&buf);
				assert_true(smmap_num_file_handles(manager) != 0);
				assert_true(smmap_collect(manager) != 0);
				assert_int_equal(smmap_num_file_handles(manager),
						 0);
				elapsed = now_s() - st;
				if (elapsed < 1e-6) /* upstream: max(elapsed, 0.001) */
					elapsed = 1e-6;
				fprintf(stderr,
					"# %s: made %d random %s accesses to a"
					" buffer created from %s, reading %f MB"
					" in %f s (%f MB/s)\n",
					man_ids[mi], max_num_accesses,
					access_mode ? "slice" : "single byte",
					item ? "an fd" : "a path",
					(double)num_bytes / 1e6, elapsed,
					(double)num_bytes / 1e6 / elapsed);
			}
			/* del buf */
			smmap_buffer_end(&buf);
			smmap_cursor_dispose(&cur);
		}
	}
	assert_int_equal(close(fd), 0);

	assert_int_equal(smmap_manager_free(man_optimal), 0);
	assert_int_equal(smmap_manager_free(man_worst_case), 0);
	assert_int_equal(smmap_manager_free(static_man), 0);
	free(tmp);
	free(data);
	free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basics),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
