/*
 * htab.c - intrusive chained hash table (see htab.h).
 */
#include "htab.h"

#include <errno.h>
#include <stdlib.h>

int htab_init(struct htab *t, unsigned order)
{
	size_t n = (size_t)1 << order;

	t->buckets = calloc(n, sizeof(struct htab_node *));
	if (!t->buckets)
		return -ENOMEM;
	t->mask = n - 1;
	t->count = 0;
	return 0;
}

void htab_dispose(struct htab *t)
{
	free(t->buckets);
	t->buckets = NULL;
	t->mask = 0;
	t->count = 0;
}

/*
 * Double the bucket array.  Called with the table's lock held: this is the
 * one allocation the library makes under its lock, amortised O(1) per insert.
 */
static void grow(struct htab *t)
{
	size_t n = (t->mask + 1) * 2;
	struct htab_node **nb = calloc(n, sizeof(struct htab_node *));

	if (!nb)
		return;
	for (size_t i = 0; i <= t->mask; i++) {
		struct htab_node *e = t->buckets[i];

		while (e) {
			struct htab_node *next = e->next;
			size_t b = e->hash & (n - 1);

			e->next = nb[b];
			nb[b] = e;
			e = next;
		}
	}
	free(t->buckets);
	t->buckets = nb;
	t->mask = n - 1;
}

void htab_insert(struct htab *t, struct htab_node *n, uint64_t hash)
{
	size_t b;

	/* Keep the load under 3/4: chains stay about one entry long. */
	if (t->count + 1 > (t->mask + 1) / 4 * 3)
		grow(t);
	b = hash & t->mask;
	n->hash = hash;
	n->next = t->buckets[b];
	t->buckets[b] = n;
	t->count++;
}

void htab_remove(struct htab *t, struct htab_node *n)
{
	struct htab_node **pp = &t->buckets[n->hash & t->mask];

	while (*pp && *pp != n)
		pp = &(*pp)->next;
	if (*pp) {
		*pp = n->next;
		n->next = NULL;
		t->count--;
	}
}

struct htab_node *htab_first(const struct htab *t, uint64_t hash)
{
	struct htab_node *e = t->buckets[hash & t->mask];

	while (e && e->hash != hash)
		e = e->next;
	return e;
}

struct htab_node *htab_next(const struct htab_node *n)
{
	struct htab_node *e = n->next;

	while (e && e->hash != n->hash)
		e = e->next;
	return e;
}
