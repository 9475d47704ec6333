/*
 * node.c - the node table and confined access to SOURCE.
 *
 * A node is referenced by the kernel (nlookup, one internal reference while
 * it is non-zero) and by the children that name it as their parent, so a
 * directory outlives its known children and paths can always be rebuilt.
 */
#include "fs.h"

#include "list.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Path depth bound: each level costs at least two bytes ("a/"). */
#define MAX_DEPTH (PATH_MAX / 2)

static uint64_t node_hash(dev_t dev, ino_t ino)
{
	return htab_mix((uint64_t)ino * UINT64_C(0x9e3779b97f4a7c15) ^
			(uint64_t)dev);
}

int fs_nodes_init(struct fs *fs)
{
	struct node *r = &fs->root;
	int err = htab_init(&fs->nodes, 10);

	if (err)
		return err;
	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->lock, NULL);
	r->dev = fs->root_st.st_dev;
	r->ino = fs->root_st.st_ino;
	r->type = S_IFDIR;
	r->snap = fs->root_st;
	r->nlookup = 1;
	r->refs = 1; /* never freed */
	htab_insert(&fs->nodes, &r->hnode, node_hash(r->dev, r->ino));
	atomic_store(&fs->ctr.nodes, 1);
	return 0;
}

static void node_free(struct fs *fs, struct node *n)
{
	htab_remove(&fs->nodes, &n->hnode);
	pthread_mutex_destroy(&n->lock);
	smmap_file_free(n->file);
	free(n->name);
	free(n);
	atomic_fetch_sub(&fs->ctr.nodes, 1);
}

/* Drop one reference; frees n and, in turn, unreferenced parents. */
static void node_unref_locked(struct fs *fs, struct node *n)
{
	while (n && n != &fs->root && --n->refs == 0) {
		struct node *parent = n->parent;

		node_free(fs, n);
		n = parent;
	}
}

void fs_nodes_dispose(struct fs *fs)
{
	pthread_mutex_lock(&fs->lock);
	for (size_t b = 0; b <= fs->nodes.mask; b++) {
		struct htab_node *h;

		while ((h = fs->nodes.buckets[b])) {
			struct node *n = container_of(h, struct node, hnode);

			if (n == &fs->root) {
				htab_remove(&fs->nodes, h);
				continue;
			}
			/* Unmount: the kernel forgets nothing more. */
			node_free(fs, n);
		}
	}
	pthread_mutex_unlock(&fs->lock);
	smmap_file_free(fs->root.file);
	pthread_mutex_destroy(&fs->root.lock);
	htab_dispose(&fs->nodes);
}

struct node *fs_node(struct fs *fs, fuse_ino_t ino)
{
	if (ino == FUSE_ROOT_ID)
		return &fs->root;
	return (struct node *)(uintptr_t)ino;
}

fuse_ino_t fs_node_id(struct fs *fs, struct node *n)
{
	return n == &fs->root ? FUSE_ROOT_ID : (fuse_ino_t)(uintptr_t)n;
}

static struct node *find_locked(struct fs *fs, dev_t dev, ino_t ino)
{
	uint64_t h = node_hash(dev, ino);

	for (struct htab_node *e = htab_first(&fs->nodes, h); e;
	     e = htab_next(e)) {
		struct node *n = container_of(e, struct node, hnode);

		if (n->dev == dev && n->ino == ino && !n->detached)
			return n;
	}
	return NULL;
}

/* Point n at (parent, name); `name` is a fresh copy owned by n after. */
static void rename_locked(struct fs *fs, struct node *n, struct node *parent,
			  char *name)
{
	struct node *old = n->parent;

	if (old == parent && n->name && strcmp(n->name, name) == 0) {
		free(name);
		return;
	}
	parent->refs++;
	n->parent = parent;
	free(n->name);
	n->name = name;
	node_unref_locked(fs, old);
}

uint64_t fs_handle_gen(int dirfd, const char *name, int flags)
{
	_Alignas(struct file_handle) unsigned char raw[sizeof(struct file_handle) +
						       MAX_HANDLE_SZ];
	struct file_handle *fh = (struct file_handle *)raw;
	uint64_t h = UINT64_C(0xcbf29ce484222325); /* FNV-1a */
	int mount_id;

	fh->handle_bytes = MAX_HANDLE_SZ;
	if (name_to_handle_at(dirfd, name, fh, &mount_id, flags) != 0)
		return 0;
	h = (h ^ (uint64_t)(unsigned)fh->handle_type) * UINT64_C(0x100000001b3);
	for (unsigned i = 0; i < fh->handle_bytes; i++)
		h = (h ^ fh->f_handle[i]) * UINT64_C(0x100000001b3);
	return h ? h : 1;
}

bool fs_node_matches(struct node *n, const struct stat *st, uint64_t gen)
{
	if (st->st_dev != n->dev || st->st_ino != n->ino)
		return false;
	if (n->gen && gen && n->gen != gen) {
		atomic_store(&n->stale, true);
		return false;
	}
	return true;
}

struct node *fs_node_get(struct fs *fs, struct node *parent, const char *name,
			 const struct stat *st, uint64_t gen)
{
	struct node *fresh = calloc(1, sizeof(*fresh));
	char *copy = strdup(name);
	struct node *n;

	if (!fresh || !copy) {
		free(fresh);
		free(copy);
		return NULL;
	}
	pthread_mutex_lock(&fs->lock);
	n = find_locked(fs, st->st_dev, st->st_ino);
	if (n && n != &fs->root &&
	    (n->type != (st->st_mode & S_IFMT) ||
	     (n->gen && gen && n->gen != gen))) {
		/*
		 * The inode number was reused by another file (of another
		 * type, or of another generation): the old node is stale.
		 * Hide it; the kernel forgets it later (it stays in the table
		 * to be freed at unmount otherwise).  Its reads fail: its
		 * windows would now be the new file's (same st_dev, st_ino).
		 */
		n->detached = true;
		atomic_store(&n->stale, true);
		n = NULL;
	}
	if (n) {
		free(fresh);
		if (n != &fs->root)
			rename_locked(fs, n, parent, copy);
		else
			free(copy);
	} else {
		n = fresh;
		pthread_mutex_init(&n->lock, NULL);
		n->dev = st->st_dev;
		n->ino = st->st_ino;
		n->type = st->st_mode & S_IFMT;
		n->gen = gen;
		n->snap = *st;
		n->parent = parent;
		n->name = copy;
		parent->refs++;
		htab_insert(&fs->nodes, &n->hnode, node_hash(n->dev, n->ino));
		atomic_fetch_add(&fs->ctr.nodes, 1);
	}
	if (n->nlookup++ == 0)
		n->refs++;
	pthread_mutex_unlock(&fs->lock);
	return n;
}

void fs_node_forget(struct fs *fs, struct node *n, uint64_t nlookup)
{
	if (n == &fs->root)
		return;
	pthread_mutex_lock(&fs->lock);
	if (nlookup >= n->nlookup) {
		n->nlookup = 0;
		node_unref_locked(fs, n);
	} else {
		n->nlookup -= nlookup;
	}
	pthread_mutex_unlock(&fs->lock);
}

int fs_node_path(struct fs *fs, struct node *n, const char *name, char *buf,
		 size_t size)
{
	const char *parts[MAX_DEPTH + 1];
	size_t depth = 0, len = 0;
	int err = 0;

	pthread_mutex_lock(&fs->lock);
	if (name)
		parts[depth++] = name;
	for (; n && n != &fs->root; n = n->parent) {
		if (depth == MAX_DEPTH) {
			err = -ENAMETOOLONG;
			break;
		}
		parts[depth++] = n->name;
	}
	if (!err && depth == 0) {
		if (size < 2)
			err = -ENAMETOOLONG;
		else
			memcpy(buf, ".", 2);
	}
	for (size_t i = depth; !err && i-- > 0;) {
		size_t l = strlen(parts[i]);

		if (len + l + 2 > size) {
			err = -ENAMETOOLONG;
			break;
		}
		memcpy(buf + len, parts[i], l);
		len += l;
		buf[len++] = i ? '/' : '\0';
	}
	pthread_mutex_unlock(&fs->lock);
	return err;
}

int fs_openat_beneath(struct fs *fs, const char *rel, int flags)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC),
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
			   RESOLVE_NO_MAGICLINKS,
	};
	long fd;

	do {
		fd = syscall(SYS_openat2, fs->root_fd, rel, &how, sizeof(how));
	} while (fd < 0 && errno == EAGAIN);
	return fd < 0 ? -errno : (int)fd;
}

int fs_open_node(struct fs *fs, struct node *n, const char *name, int flags)
{
	char path[PATH_MAX];
	int fd = fs_node_path(fs, n, name, path, sizeof(path));

	if (fd < 0)
		return fd;
	smmap_fd_acquire(fs->man);
	fd = fs_openat_beneath(fs, path, flags);
	if (fd < 0)
		smmap_fd_release(fs->man);
	return fd;
}

void fs_close_slot(struct fs *fs, int fd)
{
	close(fd);
	smmap_fd_release(fs->man);
}

int fs_stat_node(struct fs *fs, struct node *n, const char *name,
		 struct stat *st, uint64_t *gen)
{
	int err = 0;
	int fd = fs_open_node(fs, n, name, O_PATH | O_NOFOLLOW);

	if (fd < 0)
		return fd;
	if (fstat(fd, st) != 0)
		err = -errno;
	else if (gen)
		*gen = fs_handle_gen(fd, "", AT_EMPTY_PATH);
	fs_close_slot(fs, fd);
	return err;
}

/*
 * Open `path` for reading only while it names n's regular file: a look
 * with O_PATH (which opens nothing) comes first, so that a FIFO or device
 * node swapped in under the name is never opened - opening a FIFO wakes
 * its writers, opening a device may act on it.  Only a swap between the
 * two opens is left, and the callers' identity check on the descriptor
 * catches it.  The caller holds a slot.  @return a descriptor or -errno.
 */
static int open_regular(struct fs *fs, struct node *n, const char *path)
{
	struct stat st;
	int fd = fs_openat_beneath(fs, path, O_PATH | O_NOFOLLOW);
	int err = 0;

	if (fd < 0)
		return fd;
	if (fstat(fd, &st) != 0)
		err = -errno;
	else if (!S_ISREG(st.st_mode) || st.st_dev != n->dev ||
		 st.st_ino != n->ino)
		err = -ESTALE;
	close(fd);
	if (err)
		return err;
	/* O_NONBLOCK all the same: a FIFO swapped in meanwhile. */
	return fs_openat_beneath(fs, path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
}

int fs_open_node_file(struct fs *fs, struct node *n)
{
	char path[PATH_MAX];
	int fd = fs_node_path(fs, n, NULL, path, sizeof(path));

	if (fd < 0)
		return fd;
	smmap_fd_acquire(fs->man);
	fd = open_regular(fs, n, path);
	if (fd < 0)
		smmap_fd_release(fs->man);
	return fd;
}

int fs_node_opener(void *ctx)
{
	struct node *n = ctx;
	char path[PATH_MAX];
	int err = fs_node_path(fs_global, n, NULL, path, sizeof(path));
	int fd;

	if (err)
		return err;
	fd = open_regular(fs_global, n, path);
	/*
	 * Not n's file (another generation): the library's own check of
	 * (st_dev, st_ino) would pass a file that got n's freed inode number
	 * again, and its pread fallback checks nothing.
	 */
	if (fd >= 0 && n->gen) {
		uint64_t gen = fs_handle_gen(fd, "", AT_EMPTY_PATH);
		struct stat st;

		if (gen && gen != n->gen) {
			if (fstat(fd, &st) == 0 && st.st_dev == n->dev &&
			    st.st_ino == n->ino)
				atomic_store(&n->stale, true); /* reused */
			close(fd);
			return -ESTALE;
		}
	}
	return fd;
}
