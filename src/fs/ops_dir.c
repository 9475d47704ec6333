/*
 * ops_dir.c - opendir, readdir, readdirplus, releasedir.
 *
 * opendir reads the whole directory into a snapshot and closes its
 * descriptor, so an open directory holds no descriptor; offsets are
 * positions in the snapshot, stable whatever happens in SOURCE meanwhile.
 * readdirplus stats each entry relative to a transient directory descriptor
 * (one name, no traversal: nothing can lead outside SOURCE).
 */
#include "fs.h"

#include "list.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct dent {
	ino_t ino;
	unsigned char type; /* DT_* */
	char *name;         /* points into snapshot->names */
};

struct snapshot {
	struct list_node link;     /* open_dirs, while the kernel holds it */
	size_t count;
	struct dent *ents;
	char *names;
};

/*
 * Snapshots of open directories.  The kernel sends RELEASEDIR in the
 * background: an unmount right after a close may end the connection before
 * it arrives, so what is still open at exit is freed by fs_dirs_dispose().
 */
static pthread_mutex_t open_dirs_lock = PTHREAD_MUTEX_INITIALIZER;
static struct list_node open_dirs = { &open_dirs, &open_dirs };

static void snapshot_free(struct snapshot *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&open_dirs_lock);
	list_del(&s->link);
	pthread_mutex_unlock(&open_dirs_lock);
	free(s->ents);
	free(s->names);
	free(s);
}

void fs_dirs_dispose(void)
{
	struct list_node *l, *next;

	/* Take the whole list at once, then free it. */
	pthread_mutex_lock(&open_dirs_lock);
	l = open_dirs.next;
	list_init(&open_dirs);
	pthread_mutex_unlock(&open_dirs_lock);
	for (; l != &open_dirs; l = next) {
		next = l->next;
		list_init(l); /* off the list already */
		snapshot_free(container_of(l, struct snapshot, link));
	}
}

static int snapshot_add(struct snapshot *s, size_t *cap, size_t *used,
			size_t *ncap, const struct dirent *d)
{
	size_t len = strlen(d->d_name) + 1;

	if (s->count == *cap) {
		size_t c = *cap ? *cap * 2 : 64;
		struct dent *e = realloc(s->ents, c * sizeof(*e));

		if (!e)
			return -ENOMEM;
		s->ents = e;
		*cap = c;
	}
	if (*used + len > *ncap) {
		size_t c = *ncap ? *ncap * 2 : 4096;
		char *nn;

		while (c < *used + len)
			c *= 2;
		nn = realloc(s->names, c);
		if (!nn)
			return -ENOMEM;
		s->names = nn;
		*ncap = c;
	}
	memcpy(s->names + *used, d->d_name, len);
	s->ents[s->count].ino = d->d_ino;
	s->ents[s->count].type = d->d_type;
	/* An offset for now: names may still move with realloc. */
	s->ents[s->count].name = (char *)(uintptr_t)*used;
	*used += len;
	s->count++;
	return 0;
}

/* Read the open directory fd into a snapshot, on open_dirs (takes over fd). */
static int snapshot_read(int fd, struct snapshot **out)
{
	struct snapshot *s = calloc(1, sizeof(*s));
	size_t cap = 0, used = 0, ncap = 0;
	struct dirent *d;
	DIR *dir;
	int err = 0;

	if (!s) {
		close(fd);
		return -ENOMEM;
	}
	list_init(&s->link);
	dir = fdopendir(fd);
	if (!dir) {
		err = -errno;
		close(fd);
		free(s);
		return err;
	}
	errno = 0;
	while (!err && (d = readdir(dir)))
		err = snapshot_add(s, &cap, &used, &ncap, d);
	if (!err && errno)
		err = -errno;
	closedir(dir);
	if (err) {
		snapshot_free(s);
		return err;
	}
	for (size_t i = 0; i < s->count; i++)
		s->ents[i].name = s->names + (uintptr_t)s->ents[i].name;
	pthread_mutex_lock(&open_dirs_lock);
	list_add_tail(&open_dirs, &s->link);
	pthread_mutex_unlock(&open_dirs_lock);
	*out = s;
	return 0;
}

void fs_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	struct node *n = fs_node(fs, ino);
	struct snapshot *s = NULL;
	struct stat st;
	int err = 0;
	int fd = fs_open_node(fs, n, NULL,
			      O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK);

	/*
	 * The node is a directory: a link on the way (ELOOP) or at the end
	 * (ENOTDIR: O_DIRECTORY meets the link itself under O_NOFOLLOW), or
	 * a non-directory now at its name, means the name is stale.
	 */
	if (fd == -ELOOP || fd == -ENOTDIR)
		fd = -ESTALE;
	if (fd < 0) {
		fs_reply_err(req, -fd, "opendir");
		return;
	}
	if (fstat(fd, &st) != 0) {
		err = -errno;
		close(fd);
	} else if (!fs_node_matches(n, &st,
				    fs_handle_gen(fd, "", AT_EMPTY_PATH))) {
		err = -ESTALE;
		close(fd);
	} else {
		err = snapshot_read(fd, &s); /* closes fd */
	}
	smmap_fd_release(fs->man);
	if (err) {
		fs_reply_err(req, -err, "opendir");
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)s;
	if (fuse_reply_open(req, fi) != 0)
		snapshot_free(s);
}

void fs_op_releasedir(fuse_req_t req, fuse_ino_t ino,
		      struct fuse_file_info *fi)
{
	(void)ino;
	snapshot_free((struct snapshot *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static bool is_dot(const char *name)
{
	return strcmp(name, ".") == 0 || strcmp(name, "..") == 0;
}

void fs_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		   struct fuse_file_info *fi)
{
	struct snapshot *s = (struct snapshot *)(uintptr_t)fi->fh;
	char *buf = malloc(size ? size : 1);
	size_t pos = 0;

	(void)ino;
	if (!buf) {
		fs_reply_err(req, ENOMEM, "readdir");
		return;
	}
	for (size_t i = off > 0 ? (size_t)off : 0; i < s->count; i++) {
		struct stat st;
		size_t need;

		memset(&st, 0, sizeof(st));
		st.st_ino = s->ents[i].ino;
		st.st_mode = (mode_t)s->ents[i].type << 12;
		need = fuse_add_direntry(req, buf + pos, size - pos,
					 s->ents[i].name, &st, (off_t)(i + 1));
		if (need > size - pos)
			break;
		pos += need;
	}
	fuse_reply_buf(req, buf, pos);
	free(buf);
}

void fs_op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	struct snapshot *s = (struct snapshot *)(uintptr_t)fi->fh;
	struct node *dir = fs_node(fs, ino);
	char *buf = malloc(size ? size : 1);
	size_t pos = 0;
	int dfd;

	if (!buf) {
		fs_reply_err(req, ENOMEM, "readdirplus");
		return;
	}
	dfd = fs_open_node(fs, dir, NULL, O_PATH | O_DIRECTORY | O_NOFOLLOW);
	for (size_t i = off > 0 ? (size_t)off : 0; i < s->count; i++) {
		struct fuse_entry_param e;
		struct node *n = NULL;
		size_t need;

		memset(&e, 0, sizeof(e));
		e.attr.st_ino = s->ents[i].ino;
		e.attr.st_mode = (mode_t)s->ents[i].type << 12;
		if (!is_dot(s->ents[i].name) && dfd >= 0) {
			/* Handle, stat, handle: both digests agree or the
			 * entry changed meanwhile (then: unknown). */
			uint64_t gen = fs_handle_gen(dfd, s->ents[i].name, 0);

			if (fstatat(dfd, s->ents[i].name, &e.attr,
				    AT_SYMLINK_NOFOLLOW) == 0) {
				if (fs_handle_gen(dfd, s->ents[i].name, 0) != gen)
					gen = 0;
				n = fs_node_get(fs, dir, s->ents[i].name,
						&e.attr, gen);
			}
		}
		if (n) {
			fs_node_refresh(fs, n, &e.attr, true);
			e.ino = fs_node_id(fs, n);
			e.attr_timeout = fs->cfg.attr_timeout;
			e.entry_timeout = fs->cfg.entry_timeout;
		}
		/* Without a node (gone, or . and ..) the kernel gets no inode. */
		need = fuse_add_direntry_plus(req, buf + pos, size - pos,
					      s->ents[i].name, &e,
					      (off_t)(i + 1));
		if (need > size - pos) {
			if (n)
				fs_node_forget(fs, n, 1);
			break;
		}
		pos += need;
	}
	if (dfd >= 0)
		fs_close_slot(fs, dfd);
	fuse_reply_buf(req, buf, pos);
	free(buf);
}
