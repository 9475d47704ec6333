/*
 * window.h - smmap's MapWindow: the arithmetic that places a region.
 *
 * Signed 64-bit, because smmap's formulas go through negative intermediate
 * values (extend_left_to shrinks a window that is already too large).
 */
#ifndef SMMAP_WINDOW_H
#define SMMAP_WINDOW_H

#include <stdint.h>

struct smmap__window {
	int64_t ofs;
	int64_t size;
};

static inline int64_t smmap__window_ofs_end(const struct smmap__window *w)
{
	return w->ofs + w->size;
}

/** Move ofs down and the end up to the granularity (MapWindow.align). */
void smmap__window_align(struct smmap__window *w);
/**
 * Grow to the left up to the end of `left`, keeping ofs_end and a total of
 * at most max_size (MapWindow.extend_left_to).
 */
void smmap__window_extend_left_to(struct smmap__window *w,
				  const struct smmap__window *left,
				  int64_t max_size);
/**
 * Grow to the right up to the start of `right`, to at most max_size
 * (MapWindow.extend_right_to).
 */
void smmap__window_extend_right_to(struct smmap__window *w,
				   const struct smmap__window *right,
				   int64_t max_size);

#endif /* SMMAP_WINDOW_H */
