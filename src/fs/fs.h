/*
 * fs.h - smmapfs, the read-only FUSE mirror: shared state of the daemon.
 *
 * Nodes.  Every inode the kernel knows is a `struct node`, identified by its
 * source (st_dev, st_ino): two hard links are one node.  A node remembers one
 * (parent, name) under which it was last looked up; its path beneath SOURCE
 * is rebuilt from those links whenever a descriptor is needed and opened
 * with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)
 * relative to the one descriptor the daemon keeps, SOURCE's root.  So no
 * descriptor is held per node or per open file, and no path can leave
 * SOURCE.  The FUSE node id is the node's address (the root is 1).
 *
 * Descriptors.  Every descriptor the daemon opens on SOURCE (lookups,
 * directory listings, windows being mapped, fallback reads) takes a slot of
 * the region manager's descriptor budget first, so max_fds bounds them all.
 *
 * Locking.  Lock order: fs->lock, then node->lock, then the library's
 * locks.  fs->lock guards the node table and every node's nlookup, refs,
 * parent and name; node->lock guards the node's snapshot, file handle and
 * flags.  No system call, reply or library mapping call is made with
 * fs->lock or a node->lock held (the library's opener callback takes
 * fs->lock to build a path).  A thread holding a descriptor slot never asks
 * the library to map (with max_fds=1 that would wait for itself).
 */
#ifndef SMMAPFS_FS_H
#define SMMAPFS_FS_H

#define FUSE_USE_VERSION 312

#include <fuse_lowlevel.h>

#include "smmap.h"

#include "htab.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#define SMMAPFS_VERSION "1.0.0"
/* Largest READ the kernel sends (max_write, libfuse 3.14's 1 MiB cap). */
#define FS_MAX_READ (1u << 20)
/* Name of the statistics attribute on the mount's root. */
#define FS_STATS_XATTR "user.smmapfs.stats"

/* ---- options.c -------------------------------------------------------- */

struct fs_config {
	char *source;              /* absolute, canonical */
	char *mountpoint;          /* absolute, canonical */
	uint64_t window_size;      /* 0: whole files (smmap's static policy) */
	uint64_t max_mapped;       /* bytes, hard */
	uint64_t max_handles;      /* mappings, hard */
	unsigned max_fds;          /* descriptors on SOURCE, hard */
	double entry_timeout;
	double attr_timeout;
	double negative_timeout;
	unsigned read_ahead_kb;    /* 0: leave the kernel's default */
	int read_ahead_set;        /* given explicitly: report failures */
	unsigned max_threads;
	unsigned max_background;   /* 0: kernel default */
	int foreground;
	int debug;
	int singlethread;
	int clone_fd;
	int allow_other;
	int default_permissions;
};

/**
 * Parse argv into `cfg` and `fuse_args` (what libfuse must see: mount
 * options it knows and the mountpoint).  Prints --help/--version output and
 * sets *exit_now; on bad input prints one "smmapfs: ..." line to stderr.
 * @return 0, or -1 for bad input (exit status 1 or 2).
 */
int fs_parse_args(struct fs_config *cfg, struct fuse_args *fuse_args,
		  int argc, char **argv, bool *exit_now);
/** Parse "123", "64K", "1M", "2G", "1T" (powers of 1024).  @return 0/-1. */
int fs_parse_size(const char *s, uint64_t *out);
void fs_config_dispose(struct fs_config *cfg);

/* ---- node.c ----------------------------------------------------------- */

struct node {
	struct htab_node hnode;    /* fs->nodes by (dev, ino) */
	uint64_t nlookup;          /* kernel references; fs->lock */
	unsigned refs;             /* (nlookup > 0) + children; fs->lock */
	struct node *parent;       /* fs->lock; NULL for the root */
	char *name;                /* fs->lock; NULL for the root */
	dev_t dev;                 /* immutable */
	ino_t ino;                 /* immutable */
	mode_t type;               /* S_IFMT bits, immutable */
	uint64_t gen;              /* immutable: digest of the file handle
				    * (inode generation), 0 when unknown */
	bool detached;             /* fs->lock: never found again (ino reused);
				    * still in the table, freed at unmount */
	atomic_bool stale;         /* its inode number names another file now */

	pthread_mutex_t lock;
	struct stat snap;          /* node->lock: attributes last seen */
	smmap_file *file;          /* node->lock: regular files, from 1st open */
	bool changed;              /* node->lock: changed since the last open */
	bool unmappable;           /* node->lock: mmap refused, use pread */
	atomic_uint opens;         /* client opens */
};

struct fs_counters {
	atomic_uint_fast64_t reads;
	atomic_uint_fast64_t read_bytes;
	atomic_uint_fast64_t fallback_reads;
	atomic_uint_fast64_t fallback_bytes;
	atomic_uint_fast64_t reply_faults;   /* EFAULT from the kernel */
	atomic_uint_fast64_t stale_reads;    /* file gone or replaced: EIO */
	atomic_uint_fast64_t lookups;
	atomic_uint_fast64_t opens;
	atomic_uint_fast64_t client_opens;   /* open now */
	atomic_uint_fast64_t changes;        /* out-of-band changes noticed */
	atomic_uint_fast64_t invalidations;  /* kernel cache invalidations */
	atomic_uint_fast64_t errors;         /* error replies logged */
	atomic_uint_fast64_t nodes;          /* nodes alive */
};

struct fs {
	struct fs_config cfg;
	int root_fd;               /* O_PATH descriptor of SOURCE */
	struct stat root_st;
	struct fuse_session *se;
	smmap_manager *man;
	pthread_mutex_t lock;
	struct htab nodes;         /* fs->lock */
	struct node root;
	struct fs_counters ctr;
	struct inval_queue *inval;
	/* FUSE_CAP_AUTO_INVAL_DATA granted: the kernel drops its cached
	 * pages itself when a reply shows a new size or mtime. */
	atomic_bool auto_inval;
};

/* The one filesystem of this process (for the library's opener callback). */
extern struct fs *fs_global;

static inline void fs_inc(atomic_uint_fast64_t *c)
{
	atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

static inline void fs_add(atomic_uint_fast64_t *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

int fs_nodes_init(struct fs *fs);
void fs_nodes_dispose(struct fs *fs);
/** The node of a FUSE node id. */
struct node *fs_node(struct fs *fs, fuse_ino_t ino);
/** The FUSE node id of a node. */
fuse_ino_t fs_node_id(struct fs *fs, struct node *n);
/**
 * Find or create the node for `st`, named `name` in `parent`, and count one
 * kernel lookup on it.  Updates the node's (parent, name) to this one.
 * @return the node, or NULL (out of memory).
 */
struct node *fs_node_get(struct fs *fs, struct node *parent, const char *name,
			 const struct stat *st, uint64_t gen);
/** Drop `n` kernel lookups; frees the node when nothing refers to it. */
void fs_node_forget(struct fs *fs, struct node *n, uint64_t nlookup);
/**
 * Write the path of n (or of n/name when name is not NULL) relative to
 * SOURCE into buf: "." for the root.  @return 0, -ENAMETOOLONG.
 */
int fs_node_path(struct fs *fs, struct node *n, const char *name, char *buf,
		 size_t size);
/**
 * openat2 beneath SOURCE, never following a symlink (an O_PATH|O_NOFOLLOW
 * open of a symlink returns the link itself).  The caller holds a slot.
 * @return a descriptor or -errno.
 */
int fs_openat_beneath(struct fs *fs, const char *rel, int flags);
/**
 * Take a descriptor slot and open n (or n/name) beneath SOURCE.  Close with
 * fs_close_slot().  @return a descriptor or -errno (no slot held then).
 */
int fs_open_node(struct fs *fs, struct node *n, const char *name, int flags);
void fs_close_slot(struct fs *fs, int fd);
/**
 * stat n (or n/name) beneath SOURCE without following a final symlink;
 * *gen (unless gen is NULL) gets the file's fs_handle_gen().
 * @return 0 or -errno.
 */
int fs_stat_node(struct fs *fs, struct node *n, const char *name,
		 struct stat *st, uint64_t *gen);
/**
 * A digest of the file handle of dirfd/name (name_to_handle_at flags, such
 * as AT_EMPTY_PATH), which carries the inode's generation: a file that got
 * a freed inode number again has another one.  @return it, or 0 when the
 * filesystem gives no handles.
 */
uint64_t fs_handle_gen(int dirfd, const char *name, int flags);
/**
 * (st, gen) - fresh attributes and handle digest of what n's path leads
 * to - are n's file: same (st_dev, st_ino) and, when both are known, same
 * generation.  A reused inode number marks n stale.
 */
bool fs_node_matches(struct node *n, const struct stat *st, uint64_t gen);
/**
 * Take a slot and open n for reading, if its path still names a regular
 * file with n's (st_dev, st_ino): a FIFO or device swapped in under the
 * name is never opened.  Close with fs_close_slot().
 * @return a descriptor or -errno (-ESTALE: the name leads elsewhere).
 */
int fs_open_node_file(struct fs *fs, struct node *n);
/** The library's opener for a node's regular file (slot already held). */
int fs_node_opener(void *ctx);

/* ---- coherence.c ------------------------------------------------------ */

/**
 * Compare fresh attributes of n with what was seen before; on a change
 * retire the file's windows and invalidate the kernel's cache.  `in_reply`:
 * the caller replies with these attributes (lookup, getattr, readdirplus).
 * Caller holds no lock.  @return true when something changed.
 */
bool fs_node_refresh(struct fs *fs, struct node *n, const struct stat *st,
		     bool in_reply);
int fs_inval_start(struct fs *fs);
void fs_inval_stop(struct fs *fs);

/* ---- ops_*.c ---------------------------------------------------------- */

void fs_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup);
void fs_op_forget_multi(fuse_req_t req, size_t count,
			struct fuse_forget_data *forgets);
void fs_op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_readlink(fuse_req_t req, fuse_ino_t ino);
void fs_op_statfs(fuse_req_t req, fuse_ino_t ino);
void fs_op_access(fuse_req_t req, fuse_ino_t ino, int mask);
void fs_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		    size_t size);
void fs_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);

void fs_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		   struct fuse_file_info *fi);
void fs_op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi);
void fs_op_releasedir(fuse_req_t req, fuse_ino_t ino,
		      struct fuse_file_info *fi);
/** Free the snapshots of directories still open (at exit). */
void fs_dirs_dispose(void);

void fs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		struct fuse_file_info *fi);
void fs_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);

/** Fill the modifying operations with handlers answering EROFS. */
void fs_rofs_ops(struct fuse_lowlevel_ops *ops);

/** attributes for a reply: the source's, made read-only. */
void fs_reply_attr_of(struct stat *out, const struct stat *st);
/** Reply an error, logging it once unless it is an expected one. */
void fs_reply_err(fuse_req_t req, int err, const char *what);

/* ---- stats.c ---------------------------------------------------------- */

/** Format the statistics as key=value lines.  @return length. */
size_t fs_stats_format(struct fs *fs, char *buf, size_t size);
int fs_stats_signal_start(struct fs *fs);
void fs_stats_signal_stop(struct fs *fs);
void fs_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fs_log_use_syslog(bool on);

#endif /* SMMAPFS_FS_H */
