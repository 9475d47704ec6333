/*
 * buffer.c - smmap's SlidingWindowMapBuffer: byte and range access over a
 * cursor, hiding the windows.  Indices are relative to the buffer's offset
 * (smmap bug B5 fixed) and every read from a mapping goes through the SIGBUS
 * guard.
 */
#include "internal.h"

#include "guard.h"

#include <errno.h>

void smmap_buffer_init(smmap_buffer *b)
{
	b->cursor_ = NULL;
	b->base_ = 0;
	b->len_ = 0;
}

int smmap_buffer_begin(smmap_buffer *b, smmap_cursor *c, int64_t offset,
		       uint64_t size)
{
	uint64_t fsize, avail;
	int ret;

	if (c)
		b->cursor_ = c;
	b->base_ = 0;
	b->len_ = 0;
	c = b->cursor_;
	if (!c || !smmap_cursor_is_associated(c) || offset < 0)
		return -EINVAL;
	ret = smmap_cursor_use_region(c, offset, 0);
	if (ret < 0)
		return ret;
	smmap_cursor_file_size(&fsize, c);
	if (ret == 1 && fsize <= (uint64_t)offset) {
		/*
		 * The cursor's region was retired (the file shrank) but still
		 * covers offset: the file no longer does.
		 */
		smmap_cursor_unuse_region(c);
		ret = 0;
	}
	if (ret == 0) {
		/* B15: an empty file gives an empty buffer, not an error. */
		return fsize == 0 && offset == 0 ? 0 : -ERANGE;
	}
	avail = fsize - (uint64_t)offset;
	b->base_ = (uint64_t)offset;
	b->len_ = size < avail ? size : avail;
	return 0;
}

void smmap_buffer_end(smmap_buffer *b)
{
	b->len_ = 0;
	if (b->cursor_)
		smmap_cursor_unuse_region(b->cursor_);
}

uint64_t smmap_buffer_len(const smmap_buffer *b)
{
	return b->len_;
}

smmap_cursor *smmap_buffer_cursor(const smmap_buffer *b)
{
	return b->cursor_;
}

int smmap_buffer_byte(smmap_buffer *b, int64_t index)
{
	smmap_cursor *c = b->cursor_;
	unsigned char byte;
	int ret;

	if (!c || !smmap_cursor_is_associated(c))
		return -EINVAL;
	if (index < 0)
		index += (int64_t)b->len_;
	if (index < 0 || (uint64_t)index >= b->len_)
		return -ERANGE;
	ret = smmap_cursor_use_region(c, (int64_t)b->base_ + index, 0);
	if (ret <= 0)
		return ret == 0 ? -EIO : ret; /* the file shrank */
	if (smmap__guarded_copy(&byte, smmap_cursor_buffer(c), 1)) {
		ctr_inc(&c->man_->ctr.sigbus_caught);
		smmap_cursor_unuse_region(c);
		smmap_file_revalidate(smmap_cursor_file(c), NULL);
		return -EIO;
	}
	return byte;
}

ssize_t smmap_buffer_copy(smmap_buffer *b, void *dst, int64_t start,
			  int64_t end)
{
	smmap_cursor *c = b->cursor_;
	int64_t len = (int64_t)b->len_;
	ssize_t n;

	if (!c || !smmap_cursor_is_associated(c))
		return -EINVAL;
	if (start < 0)
		start += len;
	if (end < 0)
		end += len;
	if (end < start)
		return -EINVAL;
	if (start < 0 || end > len)
		return -ERANGE;
	if (end == start)
		return 0;
	n = smmap_cursor_read(c, dst, (size_t)(end - start),
			      (int64_t)b->base_ + start);
	if (n >= 0 && n < end - start)
		return n > 0 ? n : -EIO; /* the file shrank underneath */
	return n;
}
