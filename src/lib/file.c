/*
 * file.c - file entries (one per st_dev/st_ino) and the handles that name
 * them by path, descriptor or opener.
 *
 * Keying entries by identity means a file reached under two names - a path
 * and a descriptor, or two hard links - is mapped once.  Each handle keeps
 * its own way of opening the file, so a borrowed descriptor is only ever
 * used through the handle that borrowed it.
 */
#include "internal.h"

#include "os.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t identity_hash(dev_t dev, ino_t ino)
{
	return htab_mix((uint64_t)ino * UINT64_C(0x9e3779b97f4a7c15) ^
			(uint64_t)dev);
}

static void snapshot_from_stat(struct snapshot *s, const struct stat *st)
{
	s->dev = st->st_dev;
	s->ino = st->st_ino;
	s->size = st->st_size > 0 ? (uint64_t)st->st_size : 0;
	s->mtime = st->st_mtim;
	s->ctime = st->st_ctim;
}

static bool same_time(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

bool smmap__snapshot_differs(const struct snapshot *s, const struct stat *st)
{
	uint64_t size = st->st_size > 0 ? (uint64_t)st->st_size : 0;

	return s->dev != st->st_dev || s->ino != st->st_ino ||
	       s->size != size || !same_time(&s->mtime, &st->st_mtim) ||
	       !same_time(&s->ctime, &st->st_ctim);
}

void smmap__fentry_ref_locked(struct fentry *fe)
{
	fe->refs++;
}

void smmap__fentry_unref_locked(smmap_manager *m, struct fentry *fe)
{
	if (--fe->refs > 0)
		return;
	htab_remove(&m->files, &fe->hnode);
	atomic_fetch_sub_explicit(&m->nfiles, 1, memory_order_relaxed);
	free(fe);
}

static struct fentry *fentry_find_locked(smmap_manager *m, dev_t dev,
					 ino_t ino)
{
	uint64_t h = identity_hash(dev, ino);

	for (struct htab_node *n = htab_first(&m->files, h); n;
	     n = htab_next(n)) {
		struct fentry *fe = container_of(n, struct fentry, hnode);

		if (fe->snap.dev == dev && fe->snap.ino == ino)
			return fe;
	}
	return NULL;
}

/*
 * Find the entry for st's identity, or insert `spare` (allocated by the
 * caller before taking the lock) initialised from st.  Returns the entry
 * with a reference taken; *spare is set to NULL when it was used.
 */
static struct fentry *fentry_get_locked(smmap_manager *m,
					const struct stat *st,
					struct fentry **spare)
{
	struct fentry *fe = fentry_find_locked(m, st->st_dev, st->st_ino);

	if (!fe) {
		fe = *spare;
		*spare = NULL;
		memset(fe, 0, sizeof(*fe));
		snapshot_from_stat(&fe->snap, st);
		list_init(&fe->regions);
		htab_insert(&m->files, &fe->hnode,
			    identity_hash(st->st_dev, st->st_ino));
		atomic_fetch_add_explicit(&m->nfiles, 1, memory_order_relaxed);
	}
	smmap__fentry_ref_locked(fe);
	return fe;
}

int smmap__file_apply_stat_locked(smmap_file *f, const struct stat *st,
				  struct victims *v)
{
	struct fentry *fe = f->fe;

	if (!smmap__snapshot_differs(&fe->snap, st))
		return 0;
	if (fe->snap.dev == st->st_dev && fe->snap.ino == st->st_ino) {
		/*
		 * Same file, new size or contents: windows mapped for the old
		 * size may reach past the new end (SIGBUS) or stop short of it
		 * (B12); retire those.
		 */
		snapshot_from_stat(&fe->snap, st);
		smmap__fentry_retire_locked(f->m, fe, fe->snap.size, v);
		return 1;
	}
	/* Another file under the same name: the handle follows the name. */
	return -EXDEV;
}

/* Switch a path handle to the entry of the file now at its path. */
static void file_switch_locked(smmap_file *f, const struct stat *st,
			       struct fentry **spare)
{
	struct fentry *old = f->fe;

	f->fe = fentry_get_locked(f->m, st, spare);
	smmap__fentry_unref_locked(f->m, old);
}

static int file_new(smmap_file **out, smmap_manager *m, const struct stat *st,
		    smmap_file *f)
{
	struct fentry *spare = malloc(sizeof(*spare));
	struct victims v;

	if (!spare) {
		free(f->path);
		free(f);
		return -ENOMEM;
	}
	victims_init(&v);
	f->m = m;
	atomic_init(&f->refs, 1);
	pthread_mutex_lock(&m->lock);
	f->fe = fentry_get_locked(m, st, &spare);
	/* An existing entry may be stale: creating a handle revalidates. */
	smmap__file_apply_stat_locked(f, st, &v);
	pthread_mutex_unlock(&m->lock);
	free(spare);
	victims_release(m, &v);
	atomic_fetch_add(&m->handles, 1);
	*out = f;
	return 0;
}

int smmap_file_new_path(smmap_file **out, smmap_manager *m, const char *path,
			int open_flags)
{
	smmap_file *f;
	struct stat st;

	*out = NULL;
	if (!m || !path)
		return -EINVAL;
	if (smmap__os.stat(path, &st) != 0)
		return -errno;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->path = strdup(path);
	if (!f->path) {
		free(f);
		return -ENOMEM;
	}
	f->kind = SOURCE_PATH;
	f->fd = -1;
	f->oflags = open_flags;
	return file_new(out, m, &st, f);
}

int smmap_file_new_fd(smmap_file **out, smmap_manager *m, int fd)
{
	smmap_file *f;
	struct stat st;

	*out = NULL;
	if (!m || fd < 0)
		return -EINVAL;
	if (smmap__os.fstat(fd, &st) != 0)
		return -errno;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->kind = SOURCE_FD;
	f->fd = fd;
	return file_new(out, m, &st, f);
}

int smmap_file_new_opener(smmap_file **out, smmap_manager *m,
			  const struct smmap_opener *opener,
			  const struct stat *st)
{
	smmap_file *f;

	*out = NULL;
	if (!m || !opener || !opener->open || !st)
		return -EINVAL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->kind = SOURCE_OPENER;
	f->fd = -1;
	f->opener = *opener;
	return file_new(out, m, st, f);
}

void smmap__file_ref(smmap_file *f)
{
	atomic_fetch_add(&f->refs, 1);
}

void smmap_file_free(smmap_file *f)
{
	smmap_manager *m;

	if (!f || atomic_fetch_sub(&f->refs, 1) != 1)
		return;
	m = f->m;
	pthread_mutex_lock(&m->lock);
	smmap__fentry_unref_locked(m, f->fe);
	pthread_mutex_unlock(&m->lock);
	free(f->path);
	free(f);
	atomic_fetch_sub(&m->handles, 1);
}

uint64_t smmap_file_size(const smmap_file *f)
{
	uint64_t size;

	pthread_mutex_lock(&f->m->lock);
	size = f->fe->snap.size;
	pthread_mutex_unlock(&f->m->lock);
	return size;
}

int smmap__file_open(smmap_file *f, bool *slot)
{
	int flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | f->oflags;
	int fd;

	*slot = false;
	if (f->kind == SOURCE_FD)
		return f->fd;
	smmap_fd_acquire(f->m);
	*slot = true;
	if (f->kind == SOURCE_OPENER)
		return f->opener.open(f->opener.ctx);
	if (f->m->flags & SMMAP_NOATIME) {
		fd = smmap__os.open(f->path, flags | O_NOATIME);
		if (fd >= 0 || errno != EPERM)
			return fd >= 0 ? fd : -errno;
	}
	fd = smmap__os.open(f->path, flags);
	return fd >= 0 ? fd : -errno;
}

void smmap__file_close(smmap_file *f, int fd, bool slot)
{
	if (fd >= 0 && f->kind != SOURCE_FD)
		smmap__os.close(fd);
	if (slot)
		smmap_fd_release(f->m);
}

/* stat the handle's file through its own source. */
static int file_stat(smmap_file *f, struct stat *st)
{
	bool slot;
	int fd, err = 0;

	if (f->kind == SOURCE_PATH)
		return smmap__os.stat(f->path, st) == 0 ? 0 : -errno;
	fd = smmap__file_open(f, &slot);
	if (fd < 0) {
		smmap__file_close(f, -1, slot);
		return fd;
	}
	if (smmap__os.fstat(fd, st) != 0)
		err = -errno;
	smmap__file_close(f, fd, slot);
	return err;
}

int smmap_file_revalidate(smmap_file *f, const struct stat *st)
{
	struct stat fresh;
	struct victims v;
	struct fentry *spare;
	int ret;

	if (!f)
		return -EINVAL;
	if (!st) {
		ret = file_stat(f, &fresh);
		if (ret)
			return ret;
		st = &fresh;
	}
	spare = malloc(sizeof(*spare));
	if (!spare)
		return -ENOMEM;
	victims_init(&v);
	pthread_mutex_lock(&f->m->lock);
	ret = smmap__file_apply_stat_locked(f, st, &v);
	if (ret == -EXDEV) {
		if (f->kind == SOURCE_PATH) {
			file_switch_locked(f, st, &spare);
			ret = 1;
		} else {
			/* A descriptor or opener names one file for good. */
			ret = -ESTALE;
		}
	}
	pthread_mutex_unlock(&f->m->lock);
	free(spare);
	victims_release(f->m, &v);
	return ret;
}

ssize_t smmap_file_pread(smmap_file *f, void *buf, size_t len, int64_t offset)
{
	size_t done = 0;
	bool slot;
	int fd;

	if (!f || offset < 0 || (uint64_t)len > (uint64_t)INT64_MAX - offset)
		return -EINVAL;
	fd = smmap__file_open(f, &slot);
	if (fd < 0) {
		smmap__file_close(f, -1, slot);
		return fd;
	}
	if (f->kind == SOURCE_OPENER) {
		/*
		 * An opener names one file for good (as for mappings): what
		 * its path leads to now may be another file.
		 */
		struct stat st;
		bool same;

		if (smmap__os.fstat(fd, &st) != 0) {
			int err = -errno;

			smmap__file_close(f, fd, slot);
			return err;
		}
		pthread_mutex_lock(&f->m->lock);
		same = st.st_dev == f->fe->snap.dev &&
		       st.st_ino == f->fe->snap.ino;
		pthread_mutex_unlock(&f->m->lock);
		if (!same) {
			smmap__file_close(f, fd, slot);
			return -ESTALE;
		}
	}
	while (done < len) {
		ssize_t n = smmap__os.pread(fd, (char *)buf + done, len - done,
					    offset + (int64_t)done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = -errno;

			smmap__file_close(f, fd, slot);
			return done ? (ssize_t)done : err;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	smmap__file_close(f, fd, slot);
	return (ssize_t)done;
}
