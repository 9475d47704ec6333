/*
 * htab.h - intrusive chained hash table keyed by a caller-computed 64-bit
 * hash.  The caller embeds a struct htab_node, computes the hash of its key
 * and compares keys itself while walking htab_first()/htab_next(); the table
 * only knows hashes.  The bucket array doubles when the load would exceed
 * 3/4, so lookups stay O(1) whatever the number of entries.
 *
 * Not thread-safe: callers hold the lock that guards the table.
 */
#ifndef SMMAP_HTAB_H
#define SMMAP_HTAB_H

#include <stddef.h>
#include <stdint.h>

struct htab_node {
	struct htab_node *next;
	uint64_t hash;
};

struct htab {
	struct htab_node **buckets;
	size_t mask;  /* bucket count - 1; the count is a power of two */
	size_t count; /* entries */
};

/** Set up an empty table with 2^order buckets.  @return 0 or -ENOMEM. */
int htab_init(struct htab *t, unsigned order);
/** Free the bucket array; entries are the caller's. */
void htab_dispose(struct htab *t);
/**
 * Add `n` under `hash`.  Growing the bucket array may fail silently: the
 * table stays correct, only its chains get longer.
 */
void htab_insert(struct htab *t, struct htab_node *n, uint64_t hash);
/** Remove `n`, which must be in the table. */
void htab_remove(struct htab *t, struct htab_node *n);
/** First entry stored under `hash`, or NULL. */
struct htab_node *htab_first(const struct htab *t, uint64_t hash);
/** Next entry after `n` stored under the same hash, or NULL. */
struct htab_node *htab_next(const struct htab_node *n);

/** A 64-bit mixer (splitmix64's finaliser) for building hashes. */
static inline uint64_t htab_mix(uint64_t x)
{
	x ^= x >> 30;
	x *= UINT64_C(0xbf58476d1ce4e5b9);
	x ^= x >> 27;
	x *= UINT64_C(0x94d049bb133111eb);
	x ^= x >> 31;
	return x;
}

#endif /* SMMAP_HTAB_H */
