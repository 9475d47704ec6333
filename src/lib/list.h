/*
 * list.h - intrusive circular doubly-linked list.
 *
 * Nodes are embedded in the objects they link, so insertion and removal are
 * O(1) and never allocate.  An unlinked node points at itself, which makes
 * list_del() idempotent and list_linked() a cheap test.
 */
#ifndef SMMAP_LIST_H
#define SMMAP_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct list_node {
	struct list_node *prev;
	struct list_node *next;
};

#define container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

static inline void list_init(struct list_node *n)
{
	n->prev = n;
	n->next = n;
}

static inline bool list_empty(const struct list_node *head)
{
	return head->next == head;
}

/* True when the node is on some list (nodes are kept self-linked when not). */
static inline bool list_linked(const struct list_node *n)
{
	return n->next != n;
}

static inline void list_add_tail(struct list_node *head, struct list_node *n)
{
	n->prev = head->prev;
	n->next = head;
	head->prev->next = n;
	head->prev = n;
}

static inline void list_del(struct list_node *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	list_init(n);
}

static inline struct list_node *list_first(const struct list_node *head)
{
	return list_empty(head) ? NULL : head->next;
}

#endif /* SMMAP_LIST_H */
