/*
 * ops_meta.c - lookup, forget, getattr, readlink, statfs, access and the
 * extended attributes.
 *
 * Each handler resolves its node's path beneath SOURCE with a transient
 * descriptor (see node.c) and checks that the path still leads to the
 * node's inode: a name now naming another file answers ESTALE, which makes
 * the kernel look the name up again.
 */
#include "fs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#define XATTR_MAX ((size_t)64 * 1024)

static struct fs *req_fs(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

void fs_reply_attr_of(struct stat *out, const struct stat *st)
{
	*out = *st;
}

/* Errors clients cause all the time; not worth a log line. */
static bool expected_error(int err)
{
	switch (err) {
	case ENOENT: case ENODATA: case ERANGE: case ENOTSUP: case EROFS:
	case ESTALE: case ENAMETOOLONG: case ENOTDIR: case EACCES: case EPERM:
	case EISDIR: case EINVAL: case EINTR: case ENOTEMPTY: case EEXIST:
	case ENOSYS: case EXDEV:
		return true;
	default:
		return false;
	}
}

void fs_reply_err(fuse_req_t req, int err, const char *what)
{
	if (!expected_error(err)) {
		char msg[128];

		fs_inc(&req_fs(req)->ctr.errors);
		/* strerror() is not thread-safe; GNU strerror_r() is. */
		fs_log("smmapfs: %s: %s", what,
		       strerror_r(err, msg, sizeof(msg)));
	}
	fuse_reply_err(req, err);
}

/*
 * A symlink met while resolving a node's path means a directory on the way
 * was swapped for a link: the node's path is stale, not a loop.
 */
static int path_err(int err)
{
	return err == -ELOOP ? -ESTALE : err;
}

static void reply_entry(fuse_req_t req, struct fs *fs, struct node *n,
			const struct stat *st)
{
	struct fuse_entry_param e;

	memset(&e, 0, sizeof(e));
	e.ino = fs_node_id(fs, n);
	e.attr_timeout = fs->cfg.attr_timeout;
	e.entry_timeout = fs->cfg.entry_timeout;
	fs_reply_attr_of(&e.attr, st);
	if (fuse_reply_entry(req, &e) != 0)
		fs_node_forget(fs, n, 1); /* the kernel never got it */
}

static void reply_negative(fuse_req_t req, struct fs *fs)
{
	struct fuse_entry_param e;

	if (fs->cfg.negative_timeout <= 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	memset(&e, 0, sizeof(e));
	e.entry_timeout = fs->cfg.negative_timeout;
	fuse_reply_entry(req, &e);
}

void fs_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = req_fs(req);
	struct node *p = fs_node(fs, parent);
	struct node *n;
	struct stat st;
	uint64_t gen = 0;
	int err;

	fs_inc(&fs->ctr.lookups);
	/* The kernel resolves "." and ".." itself; never walk them here. */
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	err = path_err(fs_stat_node(fs, p, name, &st, &gen));
	if (err == -ENOENT) {
		reply_negative(req, fs);
		return;
	}
	if (err) {
		fs_reply_err(req, -err, "lookup");
		return;
	}
	n = fs_node_get(fs, p, name, &st, gen);
	if (!n) {
		fs_reply_err(req, ENOMEM, "lookup");
		return;
	}
	fs_node_refresh(fs, n, &st, true);
	reply_entry(req, fs, n, &st);
}

void fs_op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct fs *fs = req_fs(req);

	fs_node_forget(fs, fs_node(fs, ino), nlookup);
	fuse_reply_none(req);
}

void fs_op_forget_multi(fuse_req_t req, size_t count,
			struct fuse_forget_data *forgets)
{
	struct fs *fs = req_fs(req);

	for (size_t i = 0; i < count; i++)
		fs_node_forget(fs, fs_node(fs, forgets[i].ino),
			       forgets[i].nlookup);
	fuse_reply_none(req);
}

/*
 * Fresh attributes of n, checked to still be n's inode.
 * @return 0, -ESTALE (the path names another file now), -errno.
 */
static int node_attrs(struct fs *fs, struct node *n, struct stat *st)
{
	uint64_t gen = 0;
	int err = path_err(fs_stat_node(fs, n, NULL, st, &gen));

	if (!err && !fs_node_matches(n, st, gen))
		err = -ESTALE;
	return err;
}

void fs_op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	struct node *n = fs_node(fs, ino);
	struct stat st, out;
	int err;

	(void)fi;
	err = node_attrs(fs, n, &st);
	if ((err == -ENOENT || err == -ESTALE) && atomic_load(&n->opens) > 0) {
		/* Unlinked or replaced while a client has it open. */
		pthread_mutex_lock(&n->lock);
		st = n->snap;
		pthread_mutex_unlock(&n->lock);
		st.st_nlink = 0;
		err = 0;
	} else if (!err) {
		fs_node_refresh(fs, n, &st, true);
	}
	if (err) {
		fs_reply_err(req, -err, "getattr");
		return;
	}
	fs_reply_attr_of(&out, &st);
	fuse_reply_attr(req, &out, fs->cfg.attr_timeout);
}

void fs_op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = req_fs(req);
	struct node *n = fs_node(fs, ino);
	char buf[PATH_MAX + 1];
	struct stat st;
	ssize_t len = -1;
	int err = 0;
	int fd = path_err(fs_open_node(fs, n, NULL, O_PATH | O_NOFOLLOW));

	if (fd < 0) {
		fs_reply_err(req, -fd, "readlink");
		return;
	}
	if (fstat(fd, &st) != 0)
		err = errno; /* NOLINT(bugprone-branch-clone): another call */
	else if (!fs_node_matches(n, &st, fs_handle_gen(fd, "", AT_EMPTY_PATH)))
		err = ESTALE;
	else if ((len = readlinkat(fd, "", buf, sizeof(buf) - 1)) < 0)
		err = errno;
	fs_close_slot(fs, fd);
	if (err) {
		fs_reply_err(req, err, "readlink");
		return;
	}
	buf[len] = '\0';
	fuse_reply_readlink(req, buf);
}

void fs_op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = req_fs(req);
	struct statvfs sv;

	(void)ino;
	if (fstatvfs(fs->root_fd, &sv) != 0) {
		fs_reply_err(req, errno, "statfs");
		return;
	}
	sv.f_flag |= ST_RDONLY;
	fuse_reply_statfs(req, &sv);
}

static bool in_groups(fuse_req_t req, gid_t gid)
{
	gid_t list[64];
	int n = fuse_req_getgroups(req, 64, list);

	for (int i = 0; i < n && i < 64; i++)
		if (list[i] == gid)
			return true;
	return false;
}

void fs_op_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	struct fs *fs = req_fs(req);
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct node *n = fs_node(fs, ino);
	struct stat st;
	mode_t bits;
	int err;

	if (mask & W_OK) {
		fuse_reply_err(req, EROFS);
		return;
	}
	err = node_attrs(fs, n, &st);
	if (err) {
		fs_reply_err(req, -err, "access");
		return;
	}
	if (ctx->uid == 0) {
		/* root may execute only what someone may execute */
		bool x = S_ISDIR(st.st_mode) || (st.st_mode & 0111);

		fuse_reply_err(req, (mask & X_OK) && !x ? EACCES : 0);
		return;
	}
	if (ctx->uid == st.st_uid)
		bits = (st.st_mode >> 6) & 7;
	else if (ctx->gid == st.st_gid || in_groups(req, st.st_gid))
		bits = (st.st_mode >> 3) & 7;
	else
		bits = st.st_mode & 7;
	fuse_reply_err(req, ((unsigned)mask & ~bits & 7) ? EACCES : 0);
}

static void reply_stats_xattr(fuse_req_t req, struct fs *fs, size_t size)
{
	char buf[4096];
	size_t len = fs_stats_format(fs, buf, sizeof(buf));

	if (size == 0) {
		/* Counters grow between the two calls: leave room. */
		fuse_reply_xattr(req, len + 512);
	} else if (size < len) {
		fuse_reply_err(req, ERANGE);
	} else {
		fuse_reply_buf(req, buf, len);
	}
}

/*
 * Run getxattr/listxattr on n through /proc/self/fd of an O_PATH
 * descriptor: it reaches FIFOs and devices without opening them.
 */
static void xattr_call(fuse_req_t req, struct node *n, const char *name,
		       size_t size)
{
	struct fs *fs = req_fs(req);
	char proc[64], *buf = NULL;
	ssize_t len;
	int err = 0;
	int fd;

	if (n->type == S_IFLNK) {
		/* No race-free way to reach a link's own attributes. */
		if (name)
			fuse_reply_err(req, ENODATA);
		else if (size)
			fuse_reply_buf(req, NULL, 0);
		else
			fuse_reply_xattr(req, 0);
		return;
	}
	if (size > XATTR_MAX)
		size = XATTR_MAX;
	if (size && !(buf = malloc(size))) {
		fs_reply_err(req, ENOMEM, "xattr");
		return;
	}
	fd = path_err(fs_open_node(fs, n, NULL, O_PATH | O_NOFOLLOW));
	if (fd < 0) {
		free(buf);
		fs_reply_err(req, -fd, "xattr");
		return;
	}
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	len = name ? getxattr(proc, name, buf, size)
		   : listxattr(proc, buf, size);
	if (len < 0)
		err = errno;
	fs_close_slot(fs, fd);
	if (err)
		fs_reply_err(req, err, "xattr");
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)len);
	else
		fuse_reply_buf(req, buf, (size_t)len);
	free(buf);
}

void fs_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		    size_t size)
{
	struct fs *fs = req_fs(req);
	struct node *n = fs_node(fs, ino);

	if (n == &fs->root && strcmp(name, FS_STATS_XATTR) == 0) {
		reply_stats_xattr(req, fs, size);
		return;
	}
	xattr_call(req, n, name, size);
}

void fs_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct fs *fs = req_fs(req);

	xattr_call(req, fs_node(fs, ino), NULL, size);
}
