/*
 * coherence.c - noticing that SOURCE changed underneath, and telling the
 * region manager and the kernel.
 *
 * Every lookup, getattr and open compares the file's fresh attributes with
 * the node's snapshot (size, mtime, ctime).  On a change the file's stale
 * windows are retired, the next open does not keep the kernel's page cache,
 * and an invalidation of the kernel's cache is queued.  The kernel already
 * drops cached pages when a reply shows a new size or mtime
 * (FUSE_CAP_AUTO_INVAL_DATA); the explicit invalidation also covers changes
 * that keep both (only ctime moves).  Invalidations are sent from their own
 * thread: libfuse forbids sending them from a handler that the kernel may be
 * waiting on with the inode's pages locked.
 */
#include "fs.h"

#include <errno.h>
#include <stdlib.h>

#define INVAL_SLOTS 4096

struct inval_queue {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	fuse_ino_t ring[INVAL_SLOTS]; /* lock */
	unsigned head, count;         /* lock */
	bool stop;                    /* lock */
	bool started;
};

static bool same_ts(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

static bool attrs_differ(const struct stat *a, const struct stat *b)
{
	return a->st_size != b->st_size || a->st_ino != b->st_ino ||
	       a->st_dev != b->st_dev || !same_ts(&a->st_mtim, &b->st_mtim) ||
	       !same_ts(&a->st_ctim, &b->st_ctim);
}

static void inval_push(struct fs *fs, fuse_ino_t ino)
{
	struct inval_queue *q = fs->inval;

	if (!q)
		return;
	pthread_mutex_lock(&q->lock);
	if (q->count < INVAL_SLOTS) {
		q->ring[(q->head + q->count) % INVAL_SLOTS] = ino;
		q->count++;
		pthread_cond_signal(&q->cond);
	}
	pthread_mutex_unlock(&q->lock);
}

bool fs_node_refresh(struct fs *fs, struct node *n, const struct stat *st,
		     bool in_reply)
{
	smmap_file *f;
	bool changed, kernel_sees;

	pthread_mutex_lock(&n->lock);
	changed = attrs_differ(&n->snap, st);
	/*
	 * A reply showing a new size or mtime makes the kernel drop its
	 * cached pages by itself (auto_inval_data).  An invalidation sent
	 * meanwhile would make it discard that very reply (its attr_version
	 * check), and the client would read up to the old size: send one
	 * only when the reply cannot tell (only ctime moved) or there is no
	 * reply with attributes (open).
	 */
	kernel_sees = in_reply && atomic_load(&fs->auto_inval) &&
		      (n->snap.st_size != st->st_size ||
		       !same_ts(&n->snap.st_mtim, &st->st_mtim));
	n->snap = *st;
	if (changed)
		n->changed = true;
	f = n->file;
	pthread_mutex_unlock(&n->lock);
	if (!changed)
		return false;
	fs_inc(&fs->ctr.changes);
	/*
	 * n->file lives as long as the node, and the kernel sends no FORGET
	 * for an inode while a request on it is being served.
	 */
	if (f)
		smmap_file_revalidate(f, st);
	if (n->type == S_IFREG && !kernel_sees)
		inval_push(fs, fs_node_id(fs, n));
	return true;
}

static void *inval_main(void *arg)
{
	struct fs *fs = arg;
	struct inval_queue *q = fs->inval;

	pthread_mutex_lock(&q->lock);
	for (;;) {
		while (!q->stop && q->count == 0)
			pthread_cond_wait(&q->cond, &q->lock);
		if (q->stop)
			break;
		fuse_ino_t ino = q->ring[q->head];

		q->head = (q->head + 1) % INVAL_SLOTS;
		q->count--;
		pthread_mutex_unlock(&q->lock);
		/* -ENOENT: the kernel no longer caches this inode; fine. */
		if (fuse_lowlevel_notify_inval_inode(fs->se, ino, 0, 0) == 0)
			fs_inc(&fs->ctr.invalidations);
		pthread_mutex_lock(&q->lock);
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

int fs_inval_start(struct fs *fs)
{
	struct inval_queue *q = calloc(1, sizeof(*q));
	int err;

	if (!q)
		return -ENOMEM;
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->cond, NULL);
	fs->inval = q;
	err = pthread_create(&q->thread, NULL, inval_main, fs);
	if (err) {
		fs->inval = NULL;
		pthread_cond_destroy(&q->cond);
		pthread_mutex_destroy(&q->lock);
		free(q);
		return -err;
	}
	q->started = true;
	return 0;
}

void fs_inval_stop(struct fs *fs)
{
	struct inval_queue *q = fs->inval;

	if (!q)
		return;
	pthread_mutex_lock(&q->lock);
	q->stop = true;
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
	if (q->started)
		pthread_join(q->thread, NULL);
	fs->inval = NULL;
	pthread_cond_destroy(&q->cond);
	pthread_mutex_destroy(&q->lock);
	free(q);
}
