/*
 * fuzz_window.c - libFuzzer target: the arithmetic that places windows,
 * near the 64-bit limits, against exact (__int128) references.
 *
 * Four parts per input, each fed from the input's bytes:
 *
 * 1. smmap_align_to_mmap() on any uint64: rounding down is num - num % g,
 *    rounding up is the next multiple of g or, above the largest multiple
 *    of g, that multiple (saturation); both are aligned, idempotent and
 *    monotonic.
 *
 * 2. smmap__window_align/extend_left_to/extend_right_to (smmap's MapWindow,
 *    signed int64) against the reference, within the domain where their
 *    results are representable.  Any signed overflow inside that domain
 *    is undefined behaviour that UBSan (-fno-sanitize-recover) turns into a
 *    crash.  The domain, and why it is the one that matters:
 *      - windows lie in the file: 0 <= ofs, 0 <= size, ofs + size <=
 *        INT64_MAX, since offsets are off_t values of a file (smmap.h
 *        rejects negative and overflowing ranges with -EINVAL before any
 *        window is made);
 *      - align: ofs + size <= 2^63 - g, the last aligned end an int64 can
 *        hold (a window reaching past it has no aligned int64 end);
 *      - extend_left_to: the left neighbour ends at or before ofs (it is
 *        a neighbour) and max_size >= 0;
 *      - extend_right_to: right.ofs >= 0 (a neighbour or the end of file)
 *        and max_size >= 0.
 *    The library itself only calls extend_right_to (window_of() in
 *    region.c, part 3); align and extend_left_to are kept for smmap's
 *    tests, so their full domain is checked.
 *
 * 3. The grid, as window_of() computes it: for a window size the manager
 *    accepts (1 <= window_size <= INT64_MAX / 2, rounded up to g: at most
 *    2^62), any file size S in [1, INT64_MAX] and any offset in [0, S),
 *    window idx = offset / W starts at idx * W (no overflow: <= offset)
 *    and extend_right_to() clamps it to min(W, S - idx * W) bytes: it
 *    contains offset, lies in the file, is full or ends at EOF.  The static
 *    policy (one window, max_size INT64_MAX) gives [0, S).  Also:
 *    smmap_manager_new() accepts exactly window sizes in [1, INT64_MAX/2]
 *    and reports the rounded size.
 *
 * 4. The same through the public API on a real sparse file of up to
 *    INT64_MAX bytes (tmpfs allows that; the part is skipped where the
 *    file system does not): a manager with a hard memory limit of LIMIT
 *    bytes, a cursor at offsets near the end, a 1-byte read, a buffer and
 *    smmap_file_pread().  use_region must return exactly what the reference
 *    says: -EINVAL for a range past INT64_MAX, 0 at/after EOF, -ENOMEM for a
 *    window larger than LIMIT, else the reference window (or -EOVERFLOW
 *    when the page-rounded mapping would end past 2^63 - 1, which mmap(2)
 *    refuses).
 */
#include "smmap.h"
#include "window.h"

#include "fuzz_input.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef __int128 i128;

/* Part 4's hard memory limit: the largest window mapped per input. */
#define LIMIT (UINT64_C(4) << 20)

static uint64_t g;       /* the granularity */
static uint64_t gmax;    /* the largest multiple of g in a uint64 */
static int sparse_fd = -1;
static char sparse_dir[PATH_MAX];

static void cleanup(void)
{
	if (sparse_fd >= 0)
		close(sparse_fd);
	if (sparse_dir[0])
		fuzz_rmdir(sparse_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char path[PATH_MAX + 8];

	(void)argc;
	(void)argv;
	g = smmap_granularity();
	gmax = UINT64_MAX / g * g;
	/* A file system that takes files of INT64_MAX bytes: tmpfs does. */
	if (fuzz_tmpdir(sparse_dir, sizeof(sparse_dir), "fuzz-window")) {
		snprintf(path, sizeof(path), "%s/f", sparse_dir);
		sparse_fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
				 0600);
		if (sparse_fd >= 0 && (ftruncate(sparse_fd, INT64_MAX) != 0 ||
				       ftruncate(sparse_fd, 0) != 0)) {
			close(sparse_fd);
			sparse_fd = -1;
		}
	}
	if (sparse_fd < 0)
		dprintf(STDERR_FILENO, "fuzz_window: no file system here takes "
			"files of INT64_MAX bytes; part 4 skipped\n");
	atexit(cleanup);
	return 0;
}

/*
 * A value in [lo, hi] (lo <= hi), biased towards the interesting ones: the
 * bounds, values next to them, the middle, multiples of g and random ones.
 */
static uint64_t pick(struct input *in, uint64_t lo, uint64_t hi)
{
	uint64_t small = in_range(in, 0, 2 * g + 1), v;

	switch (in_u8(in) % 10) {
	case 0: return lo;
	case 1: return hi;
	case 2: return hi - lo >= small ? lo + small : hi;
	case 3: return hi - lo >= small ? hi - small : lo;
	case 4: v = lo + (hi - lo) / 2; break;
	case 5: v = in_range(in, lo, hi) / g * g + small % 3 - 1; break;
	case 6: /* lo + a small number or a power of two */
		if (in_u8(in) < 128)
			v = lo + in_range(in, 0, 1u << 20);
		else
			v = lo + (UINT64_C(1) << in_range(in, 0, 63));
		break;
	default: return in_range(in, lo, hi);
	}
	return v < lo ? lo : v > hi ? hi : v;
}

static i128 min128(i128 a, i128 b)
{
	return a < b ? a : b;
}

/* ---- 1. smmap_align_to_mmap ------------------------------------------- */

static uint64_t ref_down(uint64_t x)
{
	return x - x % g;
}

static uint64_t ref_up(uint64_t x)
{
	if (x % g == 0)
		return x;
	return x > gmax ? gmax : x - x % g + g;
}

static void part_align(struct input *in)
{
	uint64_t a = pick(in, 0, UINT64_MAX), b = pick(in, 0, UINT64_MAX);
	uint64_t lo = a < b ? a : b, hi = a < b ? b : a;

	for (int up = 0; up <= 1; up++) {
		uint64_t fl = smmap_align_to_mmap(lo, up), fh =
			smmap_align_to_mmap(hi, up);

		CHECK(fl == (up ? ref_up(lo) : ref_down(lo)));
		CHECK(fh == (up ? ref_up(hi) : ref_down(hi)));
		CHECK(fl % g == 0 && fh % g == 0);
		CHECK(fl <= fh);                                 /* monotonic */
		CHECK(smmap_align_to_mmap(fl, up) == fl);       /* idempotent */
		if (!up)
			CHECK(fl <= lo && lo - fl < g);
		else if (lo <= gmax)
			CHECK(fl >= lo && fl - lo < g);
		else
			CHECK(fl == gmax);                       /* saturated */
	}
}

/* ---- 2. MapWindow ----------------------------------------------------- */

/* A window in the file: 0 <= ofs, 0 <= size, ofs + size <= end_max. */
static struct smmap__window pick_window(struct input *in, int64_t end_max)
{
	struct smmap__window w;

	w.ofs = (int64_t)pick(in, 0, (uint64_t)end_max);
	w.size = (int64_t)pick(in, 0, (uint64_t)(end_max - w.ofs));
	return w;
}

static void part_mapwindow(struct input *in)
{
	struct smmap__window w, l, r, orig;
	int64_t max;

	/* align: contains the original window, aligned, less than g more. */
	w = orig = pick_window(in, INT64_MAX - (int64_t)g + 1);
	smmap__window_align(&w);
	CHECK(w.ofs % (int64_t)g == 0 && w.size % (int64_t)g == 0);
	CHECK(w.ofs <= orig.ofs && orig.ofs - w.ofs < (int64_t)g);
	CHECK((i128)w.ofs + w.size >= (i128)orig.ofs + orig.size);
	CHECK((i128)w.ofs + w.size - ((i128)orig.ofs + orig.size) < g);
	CHECK((i128)w.ofs + w.size <= INT64_MAX);

	/*
	 * extend_left_to: keeps ofs_end, size = min(ofs_end - left_end, max):
	 * grows down to the left neighbour, or shrinks from the left when the
	 * window was already larger than max (the upstream caveat).
	 */
	w = orig = pick_window(in, INT64_MAX);
	l = pick_window(in, orig.ofs);
	max = (int64_t)pick(in, 0, INT64_MAX);
	smmap__window_extend_left_to(&w, &l, max);
	{
		i128 end = (i128)orig.ofs + orig.size;
		i128 size = min128(end - ((i128)l.ofs + l.size), max);

		CHECK(w.size == size);
		CHECK((i128)w.ofs + w.size == end);
		CHECK(w.ofs >= l.ofs + l.size);
	}

	/* extend_right_to: size = min(right.ofs - ofs, max), ofs unchanged. */
	w = orig = pick_window(in, INT64_MAX);
	r.ofs = (int64_t)pick(in, 0, INT64_MAX);
	r.size = (int64_t)pick(in, 0, (uint64_t)(INT64_MAX - r.ofs));
	max = (int64_t)pick(in, 0, INT64_MAX);
	smmap__window_extend_right_to(&w, &r, max);
	CHECK(w.ofs == orig.ofs);
	CHECK(w.size == min128((i128)r.ofs - orig.ofs, max));
	CHECK(w.size <= max);
}

/* ---- 3. the grid ------------------------------------------------------ */

struct grid {
	uint64_t ofs;
	uint64_t len;
};

/* The reference window of `offset` in a file of S bytes. */
static struct grid ref_window(uint64_t W, uint64_t S, uint64_t offset)
{
	struct grid r;

	if (W == 0) { /* static */
		r.ofs = 0;
		r.len = S;
		return r;
	}
	unsigned __int128 o = (unsigned __int128)(offset / W) * W;

	r.ofs = (uint64_t)o;
	r.len = (uint64_t)min128((i128)W, (i128)S - (i128)o);
	return r;
}

/* What window_of() in region.c does (it is static there). */
static struct grid lib_window(uint64_t W, uint64_t S, uint64_t offset)
{
	int64_t max = W == 0 ? INT64_MAX : (int64_t)W;
	uint64_t idx = W == 0 ? 0 : offset / W;
	struct smmap__window w = { (int64_t)(idx * W), 0 };
	struct smmap__window eof = { (int64_t)S, 0 };
	struct grid r;

	smmap__window_extend_right_to(&w, &eof, max);
	r.ofs = (uint64_t)w.ofs;
	r.len = (uint64_t)w.size;
	return r;
}

/* The window sizes a manager accepts, and what it makes of them. */
static uint64_t pick_window_size(struct input *in, bool *accepted,
				 uint64_t *raw)
{
	smmap_options o;
	smmap_manager *m;
	uint64_t ws;
	int ret;

	switch (in_u8(in) % 4) {
	case 0: ws = pick(in, 0, UINT64_MAX); break;
	case 1: ws = pick(in, INT64_MAX / 2 - 4 * g, INT64_MAX / 2 + 4 * g);
		break;
	default: ws = pick(in, 1, INT64_MAX / 2); break;
	}
	smmap_options_init(&o, SMMAP_SLIDING);
	o.window_size = ws;
	ret = smmap_manager_new(&m, &o);
	*accepted = ws >= 1 && ws <= INT64_MAX / 2;
	CHECK(ret == (*accepted ? 0 : -EINVAL));
	*raw = ws;
	if (ret == 0) {
		CHECK(smmap_window_size(m) == ref_up(ws));
		CHECK(smmap_window_size(m) <= UINT64_C(1) << 62);
		CHECK(smmap_manager_free(m) == 0);
	} else {
		CHECK(m == NULL);
	}
	return ref_up(ws);
}

static void check_grid(uint64_t W, uint64_t S, uint64_t offset)
{
	struct grid r = ref_window(W, S, offset), l = lib_window(W, S, offset);

	CHECK(l.ofs == r.ofs && l.len == r.len);
	CHECK(r.ofs <= offset && offset - r.ofs < r.len);
	CHECK(r.len >= 1 && r.len <= SIZE_MAX);
	CHECK((i128)r.ofs + r.len <= S);
	if (W) {
		CHECK(r.ofs % W == 0 && r.len <= W);
		CHECK(r.len == W || r.ofs + r.len == S);
	} else {
		CHECK(r.ofs == 0 && r.len == S);
	}
}

static void part_grid(struct input *in)
{
	bool ok;
	uint64_t raw;
	uint64_t W = pick_window_size(in, &ok, &raw);
	uint64_t S = pick(in, 1, INT64_MAX);
	uint64_t offset = pick(in, 0, S - 1);

	if (ok)
		check_grid(W, S, offset);
	check_grid(0, S, offset);
}

/* ---- 4. the public API on a sparse file ------------------------------- */

static void part_sparse(struct input *in)
{
	bool ok, is_static = in_u8(in) % 4 == 0;
	uint64_t raw;
	uint64_t W = pick_window_size(in, &ok, &raw);
	uint64_t S, offset, size, fsize;
	struct grid r;
	smmap_options o;
	smmap_manager *m;
	smmap_cursor c;
	smmap_buffer b;
	int ret;
	int64_t index;
	unsigned char byte = 0xff, two[2];

	if (sparse_fd < 0 || (!ok && !is_static))
		return;
	if (is_static)
		W = 0;
	/* Mostly near the end of the largest files; sometimes anywhere. */
	S = in_u8(in) % 2 ? pick(in, INT64_MAX - 4 * LIMIT, INT64_MAX)
			  : pick(in, 0, INT64_MAX);
	switch (in_u8(in) % 4) {
	case 0: /* the last window */
		offset = S ? ref_window(W, S, S - 1).ofs +
			     pick(in, 0, ref_window(W, S, S - 1).len - 1)
			   : 0;
		break;
	case 1: offset = pick(in, 0, INT64_MAX); break;
	case 2: offset = S + pick(in, 0, 2 * g) - g; break; /* around EOF */
	default: offset = pick(in, 0, S ? S - 1 : 0); break;
	}
	if (offset > INT64_MAX)
		offset = INT64_MAX;
	/* Small, or around the largest valid size INT64_MAX - offset. */
	size = in_u8(in) % 2 ? pick(in, 0, 2 * g)
			     : pick(in, INT64_MAX - offset >= 2
						? INT64_MAX - offset - 2 : 0,
				    (uint64_t)INT64_MAX + 2);
	if (ftruncate(sparse_fd, (off_t)S) != 0)
		return;

	smmap_options_init(&o, is_static ? SMMAP_STATIC : SMMAP_SLIDING);
	if (!is_static)
		o.window_size = raw;
	o.max_mapped = LIMIT;
	o.flags = SMMAP_HARD_MEMORY_LIMIT;
	CHECK(smmap_manager_new(&m, &o) == 0);
	CHECK(smmap_cursor_init_fd(&c, m, sparse_fd) == 0);
	CHECK(smmap_cursor_file_size(&fsize, &c) == 0 && fsize == S);

	ret = smmap_cursor_use_region(&c, (int64_t)offset, (size_t)size);
	r = offset < S ? ref_window(W, S, offset) : (struct grid){ 0, 0 };
	if (size > INT64_MAX - offset) {
		CHECK(ret == -EINVAL);
	} else if (offset >= S) {
		CHECK(ret == 0);
	} else if (r.len > LIMIT) {
		CHECK(ret == -ENOMEM);
	} else if ((i128)r.ofs + (i128)ref_up(r.len) > INT64_MAX) {
		CHECK(ret == -EOVERFLOW || ret == 1);
	} else {
		CHECK(ret == 1);
	}
	if (ret == 1) {
		uint64_t rofs;
		size_t rlen;
		uint64_t avail = r.ofs + r.len - offset;

		CHECK(smmap_cursor_map(&c, &rofs, &rlen) != NULL);
		CHECK(rofs == r.ofs && rlen == r.len);
		CHECK(smmap_cursor_ofs_begin(&c) == offset);
		CHECK(smmap_cursor_size(&c) ==
		      (size && size < avail ? size : avail));
		CHECK(smmap_cursor_includes_ofs(&c, (int64_t)offset));
		CHECK(smmap_cursor_read(&c, &byte, 1, (int64_t)offset) == 1);
		CHECK(byte == 0);
	} else {
		CHECK(!smmap_cursor_is_valid(&c));
	}
	/* smmap_file_pread: bounded by INT64_MAX and the file. */
	{
		ssize_t n = smmap_file_pread(smmap_cursor_file(&c), two,
					     sizeof(two), (int64_t)offset);

		uint64_t want = offset >= S ? 0 : S - offset;

		if (offset > INT64_MAX - sizeof(two))
			CHECK(n == -EINVAL);
		else
			CHECK(n == (ssize_t)(want < 2 ? want : 2));
	}

	/* A buffer from offset to EOF; its last byte and last two bytes. */
	smmap_buffer_init(&b);
	ret = smmap_buffer_begin(&b, &c, (int64_t)offset, SMMAP_TO_END);
	if (offset >= S) {
		CHECK(ret == (S == 0 && offset == 0 ? 0 : -ERANGE));
		CHECK(smmap_buffer_len(&b) == 0);
	} else if (r.len > LIMIT) {
		CHECK(ret == -ENOMEM && smmap_buffer_len(&b) == 0);
	} else if (ret == 0) {
		CHECK(smmap_buffer_len(&b) == S - offset);
		index = in_u8(in) % 2 ? -1 : (int64_t)pick(in, 0, INT64_MAX);
		ret = smmap_buffer_byte(&b, index);
		if (index >= 0 && (uint64_t)index >= S - offset)
			CHECK(ret == -ERANGE);
		else {
			uint64_t pos = index < 0 ? S - 1
						 : offset + (uint64_t)index;
			struct grid rw = ref_window(W, S, pos);

			if (rw.len > LIMIT)
				CHECK(ret == -ENOMEM);
			else
				CHECK(ret == 0 || ret == -EOVERFLOW);
		}
		if (S - offset >= 2) {
			/* The last two bytes: one window or two. */
			struct grid w1 = ref_window(W, S, S - 2);
			struct grid w2 = ref_window(W, S, S - 1);
			ssize_t n = smmap_buffer_copy(&b, two, -2,
						      (int64_t)(S - offset));

			if (w1.len > LIMIT)
				CHECK(n == -ENOMEM);
			else if (w1.ofs != w2.ofs && w2.len > LIMIT)
				CHECK(n == 1);
			else
				CHECK(n == 2 || n == -EOVERFLOW ||
				      (n == 1 && w1.ofs != w2.ofs));
			if (n == 2)
				CHECK(two[0] == 0 && two[1] == 0);
			CHECK(smmap_buffer_copy(&b, two, 1, 0) == -EINVAL);
			if (S - offset < INT64_MAX) {
				n = smmap_buffer_copy(&b, two, 0, INT64_MAX);
				CHECK(n == -ERANGE);
			}
			CHECK(smmap_buffer_copy(&b, two, INT64_MIN, 0) ==
			      -ERANGE);
			CHECK(smmap_buffer_copy(&b, two, -1, INT64_MIN) ==
			      -EINVAL);
		}
	} else {
		CHECK(ret == -EOVERFLOW);
	}
	smmap_buffer_end(&b);
	smmap_cursor_dispose(&c);
	CHECK(smmap_manager_free(m) == 0);
	/* Give back the pages the reads touched. */
	CHECK(ftruncate(sparse_fd, 0) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };

	part_align(&in);
	part_mapwindow(&in);
	part_grid(&in);
	part_sparse(&in);
	return 0;
}
