/*
 * internal.h - the manager's data structures, shared by the library's files.
 *
 * Objects
 *   manager  - limits, the region index, the file table, the LRU list.
 *   fentry   - one file identity (st_dev, st_ino): its size/times snapshot
 *              and its regions.  Shared by every handle on that file.
 *   smmap_file (handle) - a way to open the file (path, fd or opener) and a
 *              reference on its fentry.  Cursors reference handles.
 *   region   - one mapping: window `idx` of an fentry, [ofs, ofs + len).
 *
 * Windows lie on a fixed grid: window idx covers [idx * W, (idx+1) * W)
 * clamped to the end of the file (the static policy has one window, the
 * whole file).  Lookup is a hash of (fentry, idx): O(1) whatever the number
 * of regions.
 *
 * Locking.  Lock order: m->lock, then nothing.  m->fd_lock is never held
 * together with m->lock, and neither is held across a system call, a
 * callback or an access to mapped bytes.  The one allocation made under
 * m->lock is a hash table doubling (amortised).
 *
 *   m->lock     guards the region index, the file table, the LRU list, each
 *               fentry's fields and region list, each region's pins, state
 *               and links, each handle's `fe`, and the accounting fields
 *               (which are atomics so that getters can read them unlocked).
 *   m->cond     (with m->lock) is signalled when a region being mapped
 *               becomes ready or is abandoned.
 *   m->fd_lock  guards the descriptor budget; m->fd_cond signals a free slot.
 *
 * A cursor whose pinned region covers the requested offset touches no lock:
 * it only reads its own fields.
 */
#ifndef SMMAP_INTERNAL_H
#define SMMAP_INTERNAL_H

#include "smmap.h"

#include "htab.h"
#include "list.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

enum region_state {
	REGION_MAPPING, /* placeholder: a thread is mapping it */
	REGION_READY,   /* mapped */
};

struct smmap__region {
	struct htab_node hnode;     /* in m->regions while indexed */
	struct list_node lru;       /* on m->lru iff ready, indexed, unpinned */
	struct list_node fe_link;   /* on fe->regions while indexed */
	struct fentry *fe;          /* holds a reference on fe */
	uint64_t idx;               /* window number on the grid */
	uint64_t ofs;               /* file offset of base */
	size_t len;                 /* mapped (or reserved) length */
	unsigned char *base;        /* NULL while mapping */
	unsigned pins;              /* cursors using it */
	uint8_t state;              /* enum region_state */
	bool indexed;               /* false once retired or evicted */
};

/* The identity and the state of a file as last seen. */
struct snapshot {
	dev_t dev;
	ino_t ino;
	uint64_t size;
	struct timespec mtime;
	struct timespec ctime;
};

struct fentry {
	struct htab_node hnode;     /* in m->files, hashed by (dev, ino) */
	struct snapshot snap;
	unsigned refs;              /* handles + regions referring to it */
	unsigned nregions;          /* mapped regions, indexed or retired */
	struct list_node regions;   /* indexed regions */
};

enum source_kind { SOURCE_PATH, SOURCE_FD, SOURCE_OPENER };

struct smmap_file {
	smmap_manager *m;
	struct fentry *fe;          /* guarded by m->lock; may switch on change */
	atomic_uint refs;           /* the creator + cursors */
	enum source_kind kind;
	int fd;                     /* SOURCE_FD: borrowed */
	int oflags;                 /* SOURCE_PATH: extra open flags */
	char *path;                 /* SOURCE_PATH */
	struct smmap_opener opener; /* SOURCE_OPENER */
};

/*
 * Counters.  hits, misses, evictions, retired, mmap_calls, limit_refusals
 * and overcommits are written only under m->lock (ctr_inc_locked); the
 * others from anywhere (ctr_inc).
 */
struct counters {
	atomic_uint_fast64_t hits;
	atomic_uint_fast64_t misses;
	atomic_uint_fast64_t evictions;
	atomic_uint_fast64_t collected;
	atomic_uint_fast64_t retired;
	atomic_uint_fast64_t mmap_calls;
	atomic_uint_fast64_t map_failures;
	atomic_uint_fast64_t limit_refusals;
	atomic_uint_fast64_t overcommits;
	atomic_uint_fast64_t fd_waits;
	atomic_uint_fast64_t sigbus_caught;
};

struct smmap_manager {
	/* Configuration: immutable after smmap_manager_new(). */
	enum smmap_policy policy;
	uint64_t window_size;       /* 0 for the static policy */
	uint64_t max_mapped;
	uint64_t max_handles;
	unsigned max_fds;
	unsigned flags;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct htab regions;        /* guarded by lock */
	struct htab files;          /* guarded by lock */
	struct list_node lru;       /* guarded by lock; head = least recent */
	/*
	 * Accounting, written under lock.  mapped/mappings count every region
	 * from its reservation until after its munmap, so they never
	 * understate what is really mapped.
	 */
	atomic_uint_fast64_t mapped;
	atomic_uint_fast64_t mappings;
	atomic_uint_fast64_t peak_mapped;
	atomic_uint_fast64_t peak_mappings;
	atomic_uint_fast64_t open_files; /* fentries with nregions > 0 */
	atomic_uint_fast64_t nfiles;     /* fentries */
	atomic_uint handles;             /* smmap_file handles alive */

	pthread_mutex_t fd_lock;
	pthread_cond_t fd_cond;
	unsigned fds;                    /* guarded by fd_lock */
	atomic_uint_fast64_t fds_now;    /* mirror of fds for readers */
	atomic_uint_fast64_t peak_fds;

	struct counters ctr;
};

static inline void ctr_inc(atomic_uint_fast64_t *c)
{
	atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

static inline uint64_t ld(const atomic_uint_fast64_t *v)
{
	return atomic_load_explicit(v, memory_order_relaxed);
}

/*
 * Bump a counter only ever written with m->lock held: readers still load it
 * atomically, but the writer needs no locked read-modify-write (a locked
 * add under the mutex cost ~8 ns per lookup).
 */
static inline void ctr_inc_locked(atomic_uint_fast64_t *c)
{
	atomic_store_explicit(c, ld(c) + 1, memory_order_relaxed);
}

/* Forget the cursor's region (without unpinning it): invalid, no bytes. */
static inline void smmap__cursor_clear(smmap_cursor *c)
{
	c->region_ = NULL;
	c->rbase_ = NULL;
	c->rofs_ = 0;
	c->rlen_ = 0;
	c->ofs_ = 0;
	c->size_ = 0;
}

/* region.c: the index, the LRU and mapping. */

/** A list of regions detached under the lock, to be unmapped after it. */
struct victims {
	struct list_node head;  /* regions linked through their lru node */
	size_t count;
};

void victims_init(struct victims *v);
/** Unmap and free detached regions; takes m->lock to settle accounting. */
void victims_release(smmap_manager *m, struct victims *v);

/**
 * Make cursor `c` (associated, not pinning anything) point at `offset`:
 * find or map the window.  Returns as smmap_cursor_use_region().
 */
int smmap__region_use(smmap_cursor *c, int64_t offset, size_t size);
/** Drop the cursor's pin; a retired region unpinned for the last time is
 *  moved to `v` for unmapping.  Caller holds m->lock. */
void smmap__region_unpin_locked(smmap_manager *m, struct smmap__region *r,
				struct victims *v);
/** Pin a region the caller already pins once more (cursor copy). */
void smmap__region_pin_again(smmap_manager *m, struct smmap__region *r);
/** Unpin (takes the lock); unmaps a retired region at its last unpin. */
void smmap__region_release(smmap_manager *m, struct smmap__region *r);
/** What smmap's region() shows. */
void smmap__region_info(struct smmap_region_info *out, smmap_manager *m,
			const struct smmap__region *r);
/**
 * Retire the regions of `fe` that do not fit a file of `new_size` bytes.
 * Caller holds m->lock.
 */
void smmap__fentry_retire_locked(smmap_manager *m, struct fentry *fe,
				 uint64_t new_size, struct victims *v);
/** Detach every unused region.  Caller holds m->lock.  @return count. */
size_t smmap__collect_locked(smmap_manager *m, struct victims *v);

/* file.c: file entries and handles. */

/** Take a reference on fe.  Caller holds m->lock. */
void smmap__fentry_ref_locked(struct fentry *fe);
/** Drop a reference; frees fe at zero.  Caller holds m->lock. */
void smmap__fentry_unref_locked(smmap_manager *m, struct fentry *fe);
/**
 * Bring the handle up to date with `st` (identity and state): on a change,
 * retire the old regions or switch the handle to the new file.  Caller
 * holds m->lock.  @return 1 changed, 0 unchanged.
 */
int smmap__file_apply_stat_locked(smmap_file *f, const struct stat *st,
				  struct victims *v);
/** True when `st` differs from the snapshot in identity, size or times. */
bool smmap__snapshot_differs(const struct snapshot *s, const struct stat *st);
/**
 * Open the handle's file for reading: returns a descriptor the caller must
 * close (and *slot says whether a budget slot was taken for it, to give
 * back with smmap_fd_release), or -errno.  Called without m->lock.
 */
int smmap__file_open(smmap_file *f, bool *slot);
/** Close a descriptor from smmap__file_open(). */
void smmap__file_close(smmap_file *f, int fd, bool slot);
void smmap__file_ref(smmap_file *f);

#endif /* SMMAP_INTERNAL_H */
