/*
 * region.c - finding, mapping, evicting and retiring regions.
 *
 * A miss inserts a placeholder region (REGION_MAPPING) into the index under
 * the lock, after reserving its bytes and its mapping slot, then maps it
 * with the lock dropped.  Other cursors that want the same window wait on
 * m->cond instead of mapping it twice.  Eviction pops the LRU head (the
 * region released longest ago) in O(1); evicted regions are unmapped after
 * the lock is dropped, and only then are the counters lowered, so the
 * counters never understate what is mapped.
 */
#include "internal.h"

#include "os.h"
#include "window.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>

/* reserve_locked(): victims were detached; release them and try again. */
#define RESERVE_RETRY 1
/* map_window(): the file is not what the snapshot says. */
#define MAP_CHANGED 1
/* Consecutive changes seen while mapping before giving up. */
#define MAX_CHANGES 8

void victims_init(struct victims *v)
{
	list_init(&v->head);
	v->count = 0;
}

static uint64_t region_hash(const struct fentry *fe, uint64_t idx)
{
	return htab_mix((uint64_t)(uintptr_t)fe ^
			idx * UINT64_C(0x9e3779b97f4a7c15));
}

static struct smmap__region *find_locked(smmap_manager *m,
					 const struct fentry *fe, uint64_t idx)
{
	uint64_t h = region_hash(fe, idx);

	for (struct htab_node *n = htab_first(&m->regions, h); n;
	     n = htab_next(n)) {
		struct smmap__region *r =
			container_of(n, struct smmap__region, hnode);

		if (r->fe == fe && r->idx == idx)
			return r;
	}
	return NULL;
}

/* Remove r from the index (new lookups no longer find it). */
static void unindex_locked(smmap_manager *m, struct smmap__region *r)
{
	if (!r->indexed)
		return;
	htab_remove(&m->regions, &r->hnode);
	list_del(&r->fe_link);
	r->indexed = false;
}

/* Detach an unpinned region entirely and queue it for unmapping. */
static void to_victims_locked(smmap_manager *m, struct smmap__region *r,
			      struct victims *v)
{
	unindex_locked(m, r);
	if (list_linked(&r->lru))
		list_del(&r->lru);
	list_add_tail(&v->head, &r->lru);
	v->count++;
}

void victims_release(smmap_manager *m, struct victims *v)
{
	struct list_node *n;

	if (v->count == 0)
		return;
	for (n = v->head.next; n != &v->head; n = n->next) {
		struct smmap__region *r =
			container_of(n, struct smmap__region, lru);

		if (r->base)
			smmap__os.munmap(r->base, r->len);
	}
	pthread_mutex_lock(&m->lock);
	while ((n = list_first(&v->head))) {
		struct smmap__region *r =
			container_of(n, struct smmap__region, lru);

		list_del(n);
		atomic_fetch_sub_explicit(&m->mapped, r->len,
					  memory_order_relaxed);
		atomic_fetch_sub_explicit(&m->mappings, 1,
					  memory_order_relaxed);
		if (r->base && --r->fe->nregions == 0)
			atomic_fetch_sub_explicit(&m->open_files, 1,
						  memory_order_relaxed);
		smmap__fentry_unref_locked(m, r->fe);
		free(r);
	}
	pthread_mutex_unlock(&m->lock);
	v->count = 0;
}

static void pin_locked(struct smmap__region *r)
{
	if (r->pins++ == 0 && list_linked(&r->lru))
		list_del(&r->lru);
}

void smmap__region_unpin_locked(smmap_manager *m, struct smmap__region *r,
				struct victims *v)
{
	if (--r->pins > 0)
		return;
	if (r->indexed)
		list_add_tail(&m->lru, &r->lru); /* most recently used */
	else
		to_victims_locked(m, r, v);      /* retired: unmap now */
}

size_t smmap__collect_locked(smmap_manager *m, struct victims *v)
{
	struct list_node *n;
	size_t count = 0;

	while ((n = list_first(&m->lru))) {
		to_victims_locked(m, container_of(n, struct smmap__region, lru),
				  v);
		count++;
	}
	return count;
}

/*
 * True when region r no longer matches a file of `new_size` bytes: it
 * reaches past the new end (reading it would fault), or it was cut short by
 * the old end and the file now goes on (B12).  Full windows inside the file
 * stay: a shared mapping shows the file's current bytes.
 */
static bool region_stale(const smmap_manager *m, const struct smmap__region *r,
			 uint64_t new_size)
{
	uint64_t end = r->ofs + r->len;

	if (end > new_size)
		return true;
	if (end == new_size)
		return false;
	return m->policy == SMMAP_STATIC || r->len < m->window_size;
}

void smmap__fentry_retire_locked(smmap_manager *m, struct fentry *fe,
				 uint64_t new_size, struct victims *v)
{
	struct list_node *n = fe->regions.next;

	while (n != &fe->regions) {
		struct smmap__region *r =
			container_of(n, struct smmap__region, fe_link);

		n = n->next;
		if (!region_stale(m, r, new_size))
			continue;
		ctr_inc_locked(&m->ctr.retired);
		if (r->pins == 0)
			to_victims_locked(m, r, v);
		else
			unindex_locked(m, r); /* unmapped at its last unpin */
	}
}

static void account_locked(smmap_manager *m, size_t len)
{
	uint64_t mapped = atomic_fetch_add_explicit(&m->mapped, len,
						    memory_order_relaxed) + len;
	uint64_t maps = atomic_fetch_add_explicit(&m->mappings, 1,
						  memory_order_relaxed) + 1;

	if (mapped > ld(&m->peak_mapped))
		atomic_store_explicit(&m->peak_mapped, mapped,
				      memory_order_relaxed);
	if (maps > ld(&m->peak_mappings))
		atomic_store_explicit(&m->peak_mappings, maps,
				      memory_order_relaxed);
}

/*
 * Reserve `len` bytes and one mapping.  Evicts LRU regions while a limit
 * would be crossed.  The handle limit is always hard (as in smmap); the
 * memory limit is soft unless SMMAP_HARD_MEMORY_LIMIT.
 * @return 0 reserved, RESERVE_RETRY (victims queued), -EAGAIN, -ENOMEM.
 */
static int reserve_locked(smmap_manager *m, size_t len, struct victims *v)
{
	bool hard = m->flags & SMMAP_HARD_MEMORY_LIMIT;
	uint64_t mapped = ld(&m->mapped), maps = ld(&m->mappings);
	uint64_t gone_bytes = 0, gone_maps = 0;
	struct list_node *n;

	if (hard && len > m->max_mapped) {
		ctr_inc_locked(&m->ctr.limit_refusals);
		return -ENOMEM;
	}
	for (;;) {
		bool over_maps = maps - gone_maps + 1 > m->max_handles;
		bool over_mem = mapped - gone_bytes + len > m->max_mapped;

		if (!over_maps && !over_mem)
			break;
		n = list_first(&m->lru);
		if (!n)
			break;
		struct smmap__region *r =
			container_of(n, struct smmap__region, lru);

		gone_bytes += r->len;
		gone_maps++;
		ctr_inc_locked(&m->ctr.evictions);
		to_victims_locked(m, r, v);
	}
	if (gone_maps)
		return RESERVE_RETRY;
	if (maps + 1 > m->max_handles ||
	    (hard && mapped + len > m->max_mapped)) {
		ctr_inc_locked(&m->ctr.limit_refusals);
		return -EAGAIN;
	}
	if (mapped + len > m->max_mapped)
		ctr_inc_locked(&m->ctr.overcommits);
	account_locked(m, len);
	return 0;
}

static bool resource_error(int err)
{
	return err == -EMFILE || err == -ENFILE || err == -ENOMEM ||
	       err == -EAGAIN;
}

/* One attempt: open, check the file is still the expected one, mmap. */
static int map_once(smmap_file *f, struct smmap__region *r,
		    const struct snapshot *expect, struct stat *st)
{
	void *p = MAP_FAILED;
	bool slot;
	int err = 0;
	int fd = smmap__file_open(f, &slot);

	if (fd < 0) {
		smmap__file_close(f, -1, slot);
		return fd;
	}
	if (smmap__os.fstat(fd, st) != 0) {
		err = -errno;
	} else if (st->st_dev != expect->dev || st->st_ino != expect->ino ||
		   (uint64_t)st->st_size != expect->size) {
		err = MAP_CHANGED;
	} else {
		p = smmap__os.mmap(NULL, r->len, PROT_READ, MAP_SHARED, fd,
				   (off_t)r->ofs);
		if (p == MAP_FAILED)
			err = -errno;
	}
	smmap__file_close(f, fd, slot);
	if (!err)
		r->base = p;
	return err;
}

/*
 * Map r, without the lock.  On a resource error every unused region is
 * unmapped and the mapping tried once more (smmap's rule).
 */
static int map_window(smmap_manager *m, smmap_file *f, struct smmap__region *r,
		      const struct snapshot *expect, struct stat *st)
{
	struct victims v;
	int err;

	for (int attempt = 0;; attempt++) {
		err = map_once(f, r, expect, st);
		if (err < 0)
			ctr_inc(&m->ctr.map_failures);
		if (err >= 0 || attempt > 0 || !resource_error(err))
			return err;
		victims_init(&v);
		pthread_mutex_lock(&m->lock);
		size_t n = smmap__collect_locked(m, &v);
		pthread_mutex_unlock(&m->lock);
		atomic_fetch_add_explicit(&m->ctr.collected, n,
					  memory_order_relaxed);
		victims_release(m, &v);
	}
}

static void cursor_set(smmap_cursor *c, struct smmap__region *r,
		       int64_t offset, size_t size)
{
	size_t avail;

	c->region_ = r;
	c->rbase_ = r->base;
	c->rofs_ = r->ofs;
	c->rlen_ = r->len;
	avail = (size_t)(r->ofs + r->len - (uint64_t)offset);
	c->ofs_ = (uint64_t)offset;
	c->size_ = size && size < avail ? size : avail;
}

/* Window idx of fe: its offset and its length, clamped to end of file. */
static void window_of(const smmap_manager *m, const struct fentry *fe,
		      uint64_t idx, uint64_t *ofs, size_t *len)
{
	int64_t max = m->policy == SMMAP_STATIC ? INT64_MAX
						: (int64_t)m->window_size;
	struct smmap__window w = { (int64_t)(idx * m->window_size), 0 };
	struct smmap__window eof = { (int64_t)fe->snap.size, 0 };

	smmap__window_extend_right_to(&w, &eof, max);
	*ofs = (uint64_t)w.ofs;
	*len = (size_t)w.size;
}

static struct smmap__region *placeholder_locked(smmap_manager *m,
						struct fentry *fe,
						uint64_t idx,
						struct smmap__region *r)
{
	window_of(m, fe, idx, &r->ofs, &r->len);
	r->fe = fe;
	r->idx = idx;
	r->base = NULL;
	r->pins = 1; /* the mapping thread's */
	r->state = REGION_MAPPING;
	r->indexed = true;
	list_init(&r->lru);
	smmap__fentry_ref_locked(fe);
	htab_insert(&m->regions, &r->hnode, region_hash(fe, idx));
	list_add_tail(&fe->regions, &r->fe_link);
	return r;
}

/* Give up a placeholder: its reservation goes back at release. */
static void abandon_locked(smmap_manager *m, struct smmap__region *r,
			   struct victims *v)
{
	r->pins = 0;
	to_victims_locked(m, r, v);
	pthread_cond_broadcast(&m->cond);
}

static void publish_locked(smmap_manager *m, struct smmap__region *r)
{
	r->state = REGION_READY;
	if (r->fe->nregions++ == 0)
		atomic_fetch_add_explicit(&m->open_files, 1,
					  memory_order_relaxed);
	ctr_inc_locked(&m->ctr.mmap_calls);
	ctr_inc_locked(&m->ctr.misses);
	pthread_cond_broadcast(&m->cond);
}

int smmap__region_use(smmap_cursor *c, int64_t offset, size_t size)
{
	smmap_manager *m = c->man_;
	smmap_file *f = c->file_;
	struct smmap__region *spare = NULL, *r;
	struct snapshot expect;
	struct victims v;
	struct stat st;
	int ret, changes = 0;

	victims_init(&v);
	pthread_mutex_lock(&m->lock);
	if (c->region_)
		smmap__region_unpin_locked(m, c->region_, &v);
	smmap__cursor_clear(c);
	for (;;) {
		struct fentry *fe = f->fe;
		uint64_t idx;

		if ((uint64_t)offset >= fe->snap.size) {
			ret = 0;
			break;
		}
		idx = m->policy == SMMAP_STATIC
			      ? 0
			      : (uint64_t)offset / m->window_size;
		r = find_locked(m, fe, idx);
		if (r && r->state == REGION_READY) {
			pin_locked(r);
			ctr_inc_locked(&m->ctr.hits);
			cursor_set(c, r, offset, size);
			ret = 1;
			break;
		}
		if (r) { /* another thread is mapping this window */
			pthread_cond_wait(&m->cond, &m->lock);
			continue;
		}
		if (!spare || v.count) {
			/*
			 * Allocate outside the lock, and unmap what is queued:
			 * queued regions still count against the limits.
			 */
			pthread_mutex_unlock(&m->lock);
			victims_release(m, &v);
			if (!spare)
				spare = malloc(sizeof(*spare));
			pthread_mutex_lock(&m->lock);
			if (!spare) {
				ret = -ENOMEM;
				break;
			}
			continue; /* the world may have changed meanwhile */
		}
		uint64_t wofs;
		size_t wlen;

		window_of(m, fe, idx, &wofs, &wlen);
		ret = reserve_locked(m, wlen, &v);
		if (ret == RESERVE_RETRY) {
			pthread_mutex_unlock(&m->lock);
			victims_release(m, &v);
			pthread_mutex_lock(&m->lock);
			continue;
		}
		if (ret < 0)
			break;
		r = placeholder_locked(m, fe, idx, spare);
		spare = NULL;
		expect = fe->snap;
		pthread_mutex_unlock(&m->lock);

		ret = map_window(m, f, r, &expect, &st);

		pthread_mutex_lock(&m->lock);
		if (ret == MAP_CHANGED) {
			/*
			 * The file is not what the handle saw: take in its new
			 * state (a path handle follows a replaced file, others
			 * get -ESTALE) and look again.
			 */
			abandon_locked(m, r, &v);
			pthread_mutex_unlock(&m->lock);
			ret = smmap_file_revalidate(f, &st);
			pthread_mutex_lock(&m->lock);
			if (ret >= 0 && ++changes > MAX_CHANGES)
				ret = -EAGAIN;
			if (ret < 0)
				break;
			continue;
		}
		if (ret < 0) {
			abandon_locked(m, r, &v);
			break;
		}
		publish_locked(m, r);
		cursor_set(c, r, offset, size);
		ret = 1;
		break;
	}
	pthread_mutex_unlock(&m->lock);
	free(spare);
	victims_release(m, &v);
	return ret;
}

void smmap__region_pin_again(smmap_manager *m, struct smmap__region *r)
{
	pthread_mutex_lock(&m->lock);
	pin_locked(r);
	pthread_mutex_unlock(&m->lock);
}

void smmap__region_release(smmap_manager *m, struct smmap__region *r)
{
	struct victims v;

	victims_init(&v);
	pthread_mutex_lock(&m->lock);
	smmap__region_unpin_locked(m, r, &v);
	pthread_mutex_unlock(&m->lock);
	victims_release(m, &v);
}

void smmap__region_info(struct smmap_region_info *out, smmap_manager *m,
			const struct smmap__region *r)
{
	pthread_mutex_lock(&m->lock);
	out->ofs = r->ofs;
	out->size = r->len;
	out->client_count = r->pins + (r->indexed ? 1u : 0u);
	pthread_mutex_unlock(&m->lock);
}
