/*
 * manager.c - the manager's life cycle, limits, getters, statistics and the
 * descriptor budget.
 */
#include "internal.h"

#include "os.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define GiB (UINT64_C(1) << 30)
#define MiB (UINT64_C(1) << 20)

void smmap_options_init(smmap_options *opts, enum smmap_policy policy)
{
	bool wide = smmap_is_64_bit();

	memset(opts, 0, sizeof(*opts));
	opts->version = SMMAP_OPTIONS_VERSION;
	opts->policy = policy;
	/* smmap 5.0.1: window_size=-1 and max_memory_size=0 resolve to these. */
	opts->window_size = policy == SMMAP_STATIC ? 0 : (wide ? GiB : 64 * MiB);
	opts->max_mapped = wide ? 8 * GiB : GiB;
	opts->max_handles = SMMAP_UNLIMITED;
	opts->max_fds = 8;
	opts->flags = 0;
}

static int check_options(const smmap_options *o)
{
	if (o->version != SMMAP_OPTIONS_VERSION)
		return -EINVAL;
	if (o->policy != SMMAP_SLIDING && o->policy != SMMAP_STATIC)
		return -EINVAL;
	/* B7: a sliding window of 0 bytes maps nonsense; refuse it. */
	if (o->policy == SMMAP_SLIDING &&
	    (o->window_size == 0 || o->window_size > (uint64_t)INT64_MAX / 2))
		return -EINVAL;
	if (o->max_mapped == 0 || o->max_handles == 0 || o->max_fds == 0)
		return -EINVAL;
	if (o->flags & ~(unsigned)(SMMAP_HARD_MEMORY_LIMIT | SMMAP_NOATIME))
		return -EINVAL;
	return 0;
}

static int init_sync(smmap_manager *m)
{
	if (pthread_mutex_init(&m->lock, NULL))
		return -ENOMEM;
	if (pthread_cond_init(&m->cond, NULL))
		goto err_cond;
	if (pthread_mutex_init(&m->fd_lock, NULL))
		goto err_fdlock;
	if (pthread_cond_init(&m->fd_cond, NULL))
		goto err_fdcond;
	return 0;
err_fdcond:
	pthread_mutex_destroy(&m->fd_lock);
err_fdlock:
	pthread_cond_destroy(&m->cond);
err_cond:
	pthread_mutex_destroy(&m->lock);
	return -ENOMEM;
}

static void dispose_sync(smmap_manager *m)
{
	pthread_cond_destroy(&m->fd_cond);
	pthread_mutex_destroy(&m->fd_lock);
	pthread_cond_destroy(&m->cond);
	pthread_mutex_destroy(&m->lock);
}

int smmap_manager_new(smmap_manager **out, const smmap_options *opts)
{
	smmap_options defaults;
	smmap_manager *m;
	int err;

	*out = NULL;
	if (!opts) {
		smmap_options_init(&defaults, SMMAP_SLIDING);
		opts = &defaults;
	}
	err = check_options(opts);
	if (err)
		return err;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->policy = opts->policy;
	m->window_size = opts->policy == SMMAP_STATIC
				 ? 0
				 : smmap_align_to_mmap(opts->window_size, true);
	m->max_mapped = opts->max_mapped;
	m->max_handles = opts->max_handles;
	m->max_fds = opts->max_fds;
	m->flags = opts->flags;
	list_init(&m->lru);
	err = init_sync(m);
	if (err)
		goto err_free;
	err = htab_init(&m->regions, 8);
	if (err)
		goto err_sync;
	err = htab_init(&m->files, 6);
	if (err)
		goto err_regions;
	err = smmap_sigbus_install();
	if (err)
		goto err_files;
	*out = m;
	return 0;
err_files:
	htab_dispose(&m->files);
err_regions:
	htab_dispose(&m->regions);
err_sync:
	dispose_sync(m);
err_free:
	free(m);
	return err;
}

int smmap_manager_free(smmap_manager *m)
{
	struct victims v;

	if (!m)
		return 0;
	if (atomic_load(&m->handles) != 0)
		return -EBUSY;
	victims_init(&v);
	pthread_mutex_lock(&m->lock);
	smmap__collect_locked(m, &v);
	pthread_mutex_unlock(&m->lock);
	victims_release(m, &v);
	htab_dispose(&m->files);
	htab_dispose(&m->regions);
	dispose_sync(m);
	free(m);
	return 0;
}

size_t smmap_collect(smmap_manager *m)
{
	struct victims v;
	size_t n;

	victims_init(&v);
	pthread_mutex_lock(&m->lock);
	n = smmap__collect_locked(m, &v);
	pthread_mutex_unlock(&m->lock);
	atomic_fetch_add_explicit(&m->ctr.collected, n, memory_order_relaxed);
	victims_release(m, &v);
	return n;
}

uint64_t smmap_window_size(const smmap_manager *m)
{
	return m->window_size;
}

uint64_t smmap_max_mapped_memory_size(const smmap_manager *m)
{
	return m->max_mapped;
}

uint64_t smmap_mapped_memory_size(const smmap_manager *m)
{
	return ld(&m->mapped);
}

uint64_t smmap_max_file_handles(const smmap_manager *m)
{
	return m->max_handles;
}

uint64_t smmap_num_file_handles(const smmap_manager *m)
{
	return ld(&m->mappings);
}

uint64_t smmap_num_open_files(const smmap_manager *m)
{
	return ld(&m->open_files);
}

unsigned smmap_max_fds(const smmap_manager *m)
{
	return m->max_fds;
}

void smmap_stats_get(struct smmap_stats *out, const smmap_manager *m)
{
	const struct counters *c = &m->ctr;

	memset(out, 0, sizeof(*out));
	out->window_size = m->window_size;
	out->mapped_bytes = ld(&m->mapped);
	out->peak_mapped_bytes = ld(&m->peak_mapped);
	out->max_mapped = m->max_mapped;
	out->mappings = ld(&m->mappings);
	out->peak_mappings = ld(&m->peak_mappings);
	out->max_handles = m->max_handles;
	out->open_files = ld(&m->open_files);
	out->files = ld(&m->nfiles);
	out->fds = ld(&m->fds_now);
	out->peak_fds = ld(&m->peak_fds);
	out->max_fds = m->max_fds;
	out->hits = ld(&c->hits);
	out->misses = ld(&c->misses);
	out->evictions = ld(&c->evictions);
	out->collected = ld(&c->collected);
	out->retired = ld(&c->retired);
	out->mmap_calls = ld(&c->mmap_calls);
	out->map_failures = ld(&c->map_failures);
	out->limit_refusals = ld(&c->limit_refusals);
	out->overcommits = ld(&c->overcommits);
	out->fd_waits = ld(&c->fd_waits);
	out->sigbus_caught = ld(&c->sigbus_caught);
}

void smmap_fd_acquire(smmap_manager *m)
{
	bool waited = false;

	pthread_mutex_lock(&m->fd_lock);
	while (m->fds >= m->max_fds) {
		waited = true;
		pthread_cond_wait(&m->fd_cond, &m->fd_lock);
	}
	m->fds++;
	atomic_store_explicit(&m->fds_now, m->fds, memory_order_relaxed);
	if (m->fds > ld(&m->peak_fds))
		atomic_store_explicit(&m->peak_fds, m->fds,
				      memory_order_relaxed);
	pthread_mutex_unlock(&m->fd_lock);
	if (waited)
		ctr_inc(&m->ctr.fd_waits);
}

void smmap_fd_release(smmap_manager *m)
{
	pthread_mutex_lock(&m->fd_lock);
	if (m->fds > 0)
		m->fds--;
	atomic_store_explicit(&m->fds_now, m->fds, memory_order_relaxed);
	pthread_cond_signal(&m->fd_cond);
	pthread_mutex_unlock(&m->fd_lock);
}
