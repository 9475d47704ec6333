/*
 * ops_read.c - open, read, release: every read is answered from the region
 * manager's windows straight into the reply.
 *
 * read pins the windows covering the request with one cursor each and
 * replies with fuse_reply_iov() pointing into the mappings: libfuse sends
 * them with one writev(2) and the kernel copies from the mapped pages.  The
 * daemon itself never touches mapped bytes, so a file truncated under a
 * mapping costs the client an EIO for that request (writev fails with
 * EFAULT), never the daemon its life.  The cursors are released right after
 * the reply, which is synchronous.
 *
 * When limits leave no room (every window pinned by concurrent reads) or
 * the file cannot be mapped (mmap refused, or a size-0 file such as /proc's
 * that reads non-empty), the request is served by pread(2) through the same
 * descriptor budget.  A read never fails because of the bounds.
 */
#include "fs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

/* Windows one request may span: 1 MiB of 4 KiB windows, plus one. */
#define MAX_WINDOWS (FS_MAX_READ / 4096 + 1)

void fs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	struct node *n = fs_node(fs, ino);
	struct smmap_opener opener = { fs_node_opener, n };
	smmap_file *f = NULL;
	struct stat st;
	bool keep, need;
	int err = 0;
	int fd;

	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	/*
	 * Open once for real: the client gets EACCES (or ENOENT, ESTALE)
	 * now rather than EIO at its first read, and we get fresh attributes.
	 */
	fd = fs_open_node_file(fs, n);
	if (fd == -ELOOP)
		fd = -ESTALE;
	if (fd < 0) {
		fs_reply_err(req, -fd, "open");
		return;
	}
	if (fstat(fd, &st) != 0)
		err = errno;
	else if (!fs_node_matches(n, &st, fs_handle_gen(fd, "", AT_EMPTY_PATH)))
		err = ESTALE; /* the kernel looks the name up again */
	fs_close_slot(fs, fd);
	if (err) {
		fs_reply_err(req, err, "open");
		return;
	}
	fs_node_refresh(fs, n, &st, false);
	/* n->file is set once, under n->lock: read it there too. */
	pthread_mutex_lock(&n->lock);
	need = !n->file;
	pthread_mutex_unlock(&n->lock);
	if (need && S_ISREG(st.st_mode)) {
		err = -smmap_file_new_opener(&f, fs->man, &opener, &st);
		if (err) {
			fs_reply_err(req, err, "open");
			return;
		}
	}
	pthread_mutex_lock(&n->lock);
	if (!n->file) {
		n->file = f;
		f = NULL;
	}
	keep = !n->changed;
	n->changed = false;
	pthread_mutex_unlock(&n->lock);
	smmap_file_free(f); /* lost a race to another open */

	fs_inc(&fs->ctr.opens);
	fs_inc(&fs->ctr.client_opens);
	atomic_fetch_add(&n->opens, 1);
	/* Keep the page cache only while the file is unchanged. */
	fi->keep_cache = keep;
	fi->noflush = 1;
	/* A size-0 file may still read non-empty (procfs): ask us each time. */
	fi->direct_io = st.st_size == 0;
	if (fuse_reply_open(req, fi) != 0) {
		atomic_fetch_sub(&n->opens, 1);
		atomic_fetch_sub(&fs->ctr.client_opens, 1);
	}
}

void fs_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);

	(void)fi;
	atomic_fetch_sub(&fs_node(fs, ino)->opens, 1);
	atomic_fetch_sub(&fs->ctr.client_opens, 1);
	fuse_reply_err(req, 0);
}

/*
 * Answer a failed read.  A file deleted or replaced under an open handle
 * (ENOENT, ESTALE) is what clients of a changing SOURCE must expect: EIO,
 * counted but not logged, so that real I/O errors stand out in the log.
 */
static void reply_read_err(fuse_req_t req, struct fs *fs, int err)
{
	if (err == ESTALE || err == ENOENT) {
		fs_inc(&fs->ctr.stale_reads);
		fuse_reply_err(req, EIO);
		return;
	}
	fs_reply_err(req, err, "read");
}

/* Serve the request by pread(2): no mapping involved. */
static void read_fallback(fuse_req_t req, struct fs *fs, smmap_file *f,
			  size_t size, off_t off)
{
	char *buf = malloc(size ? size : 1);
	ssize_t n;

	if (!buf) {
		fs_reply_err(req, ENOMEM, "read");
		return;
	}
	n = smmap_file_pread(f, buf, size, off);
	if (n < 0) {
		free(buf);
		reply_read_err(req, fs, (int)-n);
		return;
	}
	fs_inc(&fs->ctr.fallback_reads);
	fs_add(&fs->ctr.fallback_bytes, (uint64_t)n);
	fs_add(&fs->ctr.read_bytes, (uint64_t)n);
	fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

/* Errors after which pread may still succeed where mmap did not. */
static bool use_fallback(int err)
{
	return err == -EAGAIN || err == -ENOMEM || err == -ENODEV ||
	       err == -EACCES || err == -EINVAL || err == -EMFILE ||
	       err == -ENFILE || err == -EPERM;
}

/*
 * Pin the windows covering [off, off + size) into c/iov.
 * @return windows pinned (>= 0; fewer bytes only at end of file) or -errno
 *         (all cursors released then).
 */
static int pin_windows(smmap_cursor *c, struct iovec *iov, smmap_file *f,
		       size_t size, off_t off, size_t *total)
{
	size_t done = 0;
	int i = 0;

	while (done < size && i < (int)MAX_WINDOWS) {
		int ret;

		smmap_cursor_init_file(&c[i], f);
		ret = smmap_cursor_use_region(&c[i], off + (off_t)done,
					      size - done);
		if (ret <= 0) {
			smmap_cursor_dispose(&c[i]);
			if (ret == 0)
				break; /* end of file */
			while (i-- > 0)
				smmap_cursor_dispose(&c[i]);
			return ret;
		}
		iov[i].iov_base = (void *)smmap_cursor_buffer(&c[i]);
		iov[i].iov_len = smmap_cursor_size(&c[i]);
		done += iov[i].iov_len;
		i++;
	}
	*total = done;
	return i;
}

void fs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	struct node *n = fs_node(fs, ino);
	smmap_cursor c[MAX_WINDOWS];
	struct iovec iov[MAX_WINDOWS];
	smmap_file *f;
	bool unmappable;
	size_t total = 0;
	int count, ret;

	(void)fi;
	if (atomic_load(&n->stale)) {
		/* Its file is gone: windows now would be another file's. */
		reply_read_err(req, fs, ESTALE);
		return;
	}
	pthread_mutex_lock(&n->lock);
	f = n->file;
	unmappable = n->unmappable || n->snap.st_size == 0;
	pthread_mutex_unlock(&n->lock);
	if (!f) {
		fs_reply_err(req, EBADF, "read");
		return;
	}
	if (size > FS_MAX_READ)
		size = FS_MAX_READ;
	fs_inc(&fs->ctr.reads);
	if (unmappable) {
		read_fallback(req, fs, f, size, off);
		return;
	}
	count = pin_windows(c, iov, f, size, off, &total);
	if (count < 0) {
		if (count == -ENODEV || count == -EACCES || count == -EINVAL) {
			pthread_mutex_lock(&n->lock);
			n->unmappable = true;
			pthread_mutex_unlock(&n->lock);
		}
		if (use_fallback(count)) {
			read_fallback(req, fs, f, size, off);
			return;
		}
		reply_read_err(req, fs, -count);
		return;
	}
	/*
	 * Count before replying: the client may read the statistics as soon
	 * as it has its data, and must find it counted.
	 */
	fs_add(&fs->ctr.read_bytes, total);
	ret = fuse_reply_iov(req, iov, count);
	for (int i = 0; i < count; i++)
		smmap_cursor_dispose(&c[i]);
	if (ret == -EFAULT) {
		/* The file shrank under the mapping: the client got EIO. */
		atomic_fetch_sub_explicit(&fs->ctr.read_bytes, total,
					  memory_order_relaxed);
		fs_inc(&fs->ctr.reply_faults);
		smmap_file_revalidate(f, NULL);
		return;
	}
}
