/*
 * cursor.c - smmap's WindowCursor: a caller-owned handle that pins one
 * region of one file.
 *
 * The fast path of smmap_cursor_use_region() - the offset lies in the
 * region the cursor already pins - reads only the cursor's own fields, so
 * it takes no lock and touches no shared cache line.
 */
#include "internal.h"

#include "guard.h"

#include <errno.h>
#include <string.h>

void smmap_cursor_init(smmap_cursor *c, smmap_manager *m)
{
	memset(c, 0, sizeof(*c));
	c->man_ = m;
}

int smmap_cursor_init_file(smmap_cursor *c, smmap_file *f)
{
	if (!f) {
		smmap_cursor_init(c, NULL);
		return -EINVAL;
	}
	smmap_cursor_init(c, f->m);
	smmap__file_ref(f);
	c->file_ = f;
	return 0;
}

int smmap_cursor_init_path(smmap_cursor *c, smmap_manager *m, const char *path)
{
	int err;

	smmap_cursor_init(c, m);
	err = smmap_file_new_path(&c->file_, m, path, 0);
	return err;
}

int smmap_cursor_init_fd(smmap_cursor *c, smmap_manager *m, int fd)
{
	int err;

	smmap_cursor_init(c, m);
	err = smmap_file_new_fd(&c->file_, m, fd);
	return err;
}

void smmap_cursor_unuse_region(smmap_cursor *c)
{
	if (c->region_)
		smmap__region_release(c->man_, c->region_);
	smmap__cursor_clear(c);
}

void smmap_cursor_dispose(smmap_cursor *c)
{
	smmap_cursor_unuse_region(c);
	smmap_file_free(c->file_);
	c->file_ = NULL;
}

int smmap_cursor_copy(smmap_cursor *dst, const smmap_cursor *src)
{
	if (dst == src)
		return -EINVAL;
	smmap_cursor_dispose(dst);
	*dst = *src;
	if (src->file_)
		smmap__file_ref(src->file_);
	if (src->region_)
		smmap__region_pin_again(src->man_, src->region_);
	return 0;
}

int smmap_cursor_use_region(smmap_cursor *c, int64_t offset, size_t size)
{
	uint64_t rel;

	if (!c->file_)
		return -EINVAL;
	if (offset < 0 || (uint64_t)size > (uint64_t)INT64_MAX - (uint64_t)offset) {
		smmap_cursor_unuse_region(c);
		return -EINVAL;
	}
	rel = (uint64_t)offset - c->rofs_;
	if (c->region_ && (uint64_t)offset >= c->rofs_ && rel < c->rlen_) {
		size_t avail = c->rlen_ - (size_t)rel;

		c->ofs_ = (uint64_t)offset;
		c->size_ = size && size < avail ? size : avail;
		return 1;
	}
	return smmap__region_use(c, offset, size);
}

bool smmap_cursor_is_valid(const smmap_cursor *c)
{
	return c->region_ != NULL;
}

bool smmap_cursor_is_associated(const smmap_cursor *c)
{
	return c->file_ != NULL;
}

const void *smmap_cursor_buffer(const smmap_cursor *c)
{
	if (!c->region_)
		return NULL;
	return c->rbase_ + (c->ofs_ - c->rofs_);
}

const void *smmap_cursor_map(const smmap_cursor *c, uint64_t *region_ofs,
			     size_t *region_len)
{
	if (region_ofs)
		*region_ofs = c->rofs_;
	if (region_len)
		*region_len = c->rlen_;
	return c->region_ ? c->rbase_ : NULL;
}

uint64_t smmap_cursor_ofs_begin(const smmap_cursor *c)
{
	return c->ofs_;
}

uint64_t smmap_cursor_ofs_end(const smmap_cursor *c)
{
	return c->ofs_ + c->size_;
}

size_t smmap_cursor_size(const smmap_cursor *c)
{
	return c->size_;
}

bool smmap_cursor_includes_ofs(const smmap_cursor *c, int64_t ofs)
{
	return c->region_ && ofs >= 0 && (uint64_t)ofs >= c->ofs_ &&
	       (uint64_t)ofs < c->ofs_ + c->size_;
}

int smmap_cursor_file_size(uint64_t *out, const smmap_cursor *c)
{
	if (!c->file_)
		return -EINVAL;
	*out = smmap_file_size(c->file_);
	return 0;
}

int smmap_cursor_path(const char **out, const smmap_cursor *c)
{
	if (!c->file_ || c->file_->kind != SOURCE_PATH)
		return -EINVAL;
	*out = c->file_->path;
	return 0;
}

int smmap_cursor_fd(int *out, const smmap_cursor *c)
{
	if (!c->file_ || c->file_->kind != SOURCE_FD)
		return -EINVAL;
	*out = c->file_->fd;
	return 0;
}

smmap_file *smmap_cursor_file(const smmap_cursor *c)
{
	return c->file_;
}

int smmap_cursor_region(struct smmap_region_info *out, const smmap_cursor *c)
{
	if (!c->region_)
		return -EINVAL;
	smmap__region_info(out, c->man_, c->region_);
	return 0;
}

ssize_t smmap_cursor_read(smmap_cursor *c, void *dst, size_t len,
			  int64_t offset)
{
	size_t done = 0;

	if (!c->file_)
		return -EINVAL;
	if (offset < 0 || (uint64_t)len > (uint64_t)INT64_MAX - (uint64_t)offset)
		return -EINVAL;
	while (done < len) {
		int ret = smmap_cursor_use_region(c, offset + (int64_t)done,
						  len - done);

		if (ret == 0)
			break;
		if (ret < 0)
			return done ? (ssize_t)done : ret;
		if (smmap__guarded_copy((char *)dst + done,
					smmap_cursor_buffer(c), c->size_)) {
			/* The file shrank under the mapping: learn its size. */
			ctr_inc(&c->man_->ctr.sigbus_caught);
			smmap_cursor_unuse_region(c);
			smmap_file_revalidate(c->file_, NULL);
			return done ? (ssize_t)done : -EIO;
		}
		done += c->size_;
	}
	return (ssize_t)done;
}
