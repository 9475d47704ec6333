/*
 * window.c - smmap's MapWindow arithmetic and the public alignment helpers.
 *
 * The manager places windows on a fixed grid (see docs/design.md), and uses
 * extend_right_to() to clamp a window to the end of the file; the rest is
 * smmap's value type, kept so its arithmetic stays tested.
 */
#include "window.h"

#include "smmap.h"

#include <unistd.h>

size_t smmap_granularity(void)
{
	static size_t g;

	/* A benign race: every thread computes the same value. */
	if (!g) {
		long p = sysconf(_SC_PAGESIZE);

		g = p > 0 ? (size_t)p : 4096;
	}
	return g;
}

uint64_t smmap_align_to_mmap(uint64_t num, bool round_up)
{
	uint64_t g = smmap_granularity();
	uint64_t res = num / g * g;

	if (round_up && res != num) {
		if (res > UINT64_MAX - g)
			return res; /* saturate at the largest aligned value */
		res += g;
	}
	return res;
}

bool smmap_is_64_bit(void)
{
	return SIZE_MAX > UINT32_MAX;
}

void smmap__window_align(struct smmap__window *w)
{
	int64_t nofs = (int64_t)smmap_align_to_mmap((uint64_t)w->ofs, false);

	w->size += w->ofs - nofs;
	w->ofs = nofs;
	w->size = (int64_t)smmap_align_to_mmap((uint64_t)w->size, true);
}

void smmap__window_extend_left_to(struct smmap__window *w,
				  const struct smmap__window *left,
				  int64_t max_size)
{
	int64_t rofs = w->ofs - smmap__window_ofs_end(left);
	int64_t nsize = rofs + w->size;

	rofs -= nsize - (nsize < max_size ? nsize : max_size);
	w->ofs -= rofs;
	w->size += rofs;
}

void smmap__window_extend_right_to(struct smmap__window *w,
				   const struct smmap__window *right,
				   int64_t max_size)
{
	int64_t size = w->size + (right->ofs - smmap__window_ofs_end(w));

	w->size = size < max_size ? size : max_size;
}
