/*
 * smmap.h - libsmmap, a sliding-window memory-map region manager.
 *
 * A C11 port of Python's smmap 5.0.1: a manager maps *windows* (regions) of
 * files on demand, cursors pin one region at a time, and the manager keeps
 * the mapped bytes, the number of mappings and the number of open
 * descriptors under limits by unmapping unused regions in LRU order.  A
 * buffer hides the windows behind byte/range accessors.
 *
 * Conventions
 *  - Functions that can fail return 0 (or a documented non-negative value)
 *    on success and a negative errno value on failure.  The library never
 *    aborts or exits.
 *  - Out-parameters come first.
 *  - Objects the library allocates are created by `_new` and destroyed by
 *    `_free`; objects the caller embeds (cursors, buffers) are set up by
 *    `_init` and torn down by `_dispose`/`_end`.
 *  - Thread safety: the manager and file handles may be used from any number
 *    of threads at once.  A cursor or buffer belongs to one thread at a time.
 *  - Offsets are signed 64-bit file offsets (like off_t); negative offsets
 *    and ranges that overflow INT64_MAX are rejected with -EINVAL.
 *
 * See docs/design.md for the design (windows, limits, LRU, locking, SIGBUS).
 */
#ifndef SMMAP_H
#define SMMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && defined(SMMAP_BUILDING)
#define SMMAP_EXPORT __attribute__((visibility("default")))
#else
#define SMMAP_EXPORT
#endif

#define SMMAP_VERSION_MAJOR 1
#define SMMAP_VERSION_MINOR 0
#define SMMAP_VERSION_PATCH 0
#define SMMAP_VERSION_STRING "1.0.0"

/** "No limit" for smmap_options.max_handles and max_mapped. */
#define SMMAP_UNLIMITED UINT64_MAX
/** "Up to the end of the file" for smmap_buffer_begin()'s size. */
#define SMMAP_TO_END UINT64_MAX

/** A region manager (opaque). */
typedef struct smmap_manager smmap_manager;
/** A handle on one file, shared by cursors (opaque, refcounted). */
typedef struct smmap_file smmap_file;
/* Internal types the cursor refers to. */
struct smmap__region;

/* ------------------------------------------------------------------------
 * Manager
 * --------------------------------------------------------------------- */

/** Window policy, smmap's two managers. */
enum smmap_policy {
	/** SlidingWindowMapManager: windows of window_size bytes. */
	SMMAP_SLIDING = 0,
	/** StaticWindowMapManager: one window covering the whole file. */
	SMMAP_STATIC = 1,
};

/** Flags for smmap_options.flags. */
enum smmap_flag {
	/**
	 * Make max_mapped a hard limit: never map beyond it.  Without this
	 * flag the limit is soft, as in smmap: unused regions are unmapped to
	 * make room, and when every region is in use the mapping is made
	 * anyway (stats.overcommits counts these).
	 */
	SMMAP_HARD_MEMORY_LIMIT = 1u << 0,
	/** Open path-keyed files with O_NOATIME where permitted. */
	SMMAP_NOATIME = 1u << 1,
};

#define SMMAP_OPTIONS_VERSION 1

/**
 * Manager options.  Always fill with smmap_options_init() first, then
 * change what you need: fields added later get their defaults.
 */
typedef struct smmap_options {
	unsigned version;           /**< SMMAP_OPTIONS_VERSION */
	enum smmap_policy policy;   /**< sliding or static */
	/**
	 * Sliding policy: the window size in bytes, rounded up to the mapping
	 * granularity.  Default 1 GiB on 64-bit, 64 MiB on 32-bit.  0 is
	 * rejected for the sliding policy (-EINVAL, smmap bug B7); ignored
	 * by the static policy.
	 */
	uint64_t window_size;
	/** Mapped bytes; default 8 GiB (64-bit) / 1 GiB (32-bit). */
	uint64_t max_mapped;
	/** Live mappings (smmap's "file handles"); default unlimited. */
	uint64_t max_handles;
	/**
	 * Descriptors the library (and users of smmap_fd_acquire()) hold at
	 * once.  Descriptors are opened only to map a window and closed right
	 * after mmap.  Default 8.
	 */
	unsigned max_fds;
	unsigned flags;             /**< enum smmap_flag bits */
} smmap_options;

/**
 * Fill `opts` with smmap 5.0.1's defaults for `policy` plus the library's
 * own (max_fds, flags).  Never fails.
 */
SMMAP_EXPORT void smmap_options_init(smmap_options *opts,
				     enum smmap_policy policy);

/**
 * Create a manager.  `opts` may be NULL for the sliding defaults.
 *
 * Installs (or re-installs) the SIGBUS guard, see smmap_sigbus_install().
 *
 * @param[out] out  the new manager, to be freed with smmap_manager_free()
 * @return 0, -EINVAL for invalid options (unknown version, sliding window
 *         of 0, zero limits), -ENOMEM.
 */
SMMAP_EXPORT int smmap_manager_new(smmap_manager **out,
				   const smmap_options *opts);

/**
 * Free a manager and unmap all its regions.
 *
 * @return 0, or -EBUSY (nothing freed) while file handles or cursors still
 *         refer to the manager.
 */
SMMAP_EXPORT int smmap_manager_free(smmap_manager *m);

/**
 * Unmap every unused region, in LRU order.  smmap's collect().
 * Thread-safe.
 * @return the number of regions unmapped.
 */
SMMAP_EXPORT size_t smmap_collect(smmap_manager *m);

/** Window size in bytes (0 for the static policy).  Thread-safe. */
SMMAP_EXPORT uint64_t smmap_window_size(const smmap_manager *m);
/** Configured max_mapped.  Thread-safe. */
SMMAP_EXPORT uint64_t smmap_max_mapped_memory_size(const smmap_manager *m);
/** Bytes currently mapped.  Thread-safe, a snapshot. */
SMMAP_EXPORT uint64_t smmap_mapped_memory_size(const smmap_manager *m);
/** Configured max_handles (SMMAP_UNLIMITED by default).  Thread-safe. */
SMMAP_EXPORT uint64_t smmap_max_file_handles(const smmap_manager *m);
/** Live mappings (smmap's num_file_handles()).  Thread-safe, a snapshot. */
SMMAP_EXPORT uint64_t smmap_num_file_handles(const smmap_manager *m);
/** Files with at least one mapping (smmap's num_open_files()). */
SMMAP_EXPORT uint64_t smmap_num_open_files(const smmap_manager *m);
/** Configured max_fds.  Thread-safe. */
SMMAP_EXPORT unsigned smmap_max_fds(const smmap_manager *m);

/** Counters, filled by smmap_stats_get(). */
struct smmap_stats {
	uint64_t window_size;       /**< 0 for the static policy */
	uint64_t mapped_bytes;      /**< bytes mapped now */
	uint64_t peak_mapped_bytes; /**< highest mapped_bytes seen */
	uint64_t max_mapped;        /**< limit */
	uint64_t mappings;          /**< live mappings */
	uint64_t peak_mappings;
	uint64_t max_handles;       /**< limit (SMMAP_UNLIMITED) */
	uint64_t open_files;        /**< files with >= 1 mapping */
	uint64_t files;             /**< file entries alive */
	uint64_t fds;               /**< descriptors held now */
	uint64_t peak_fds;
	uint64_t max_fds;           /**< limit */
	/**
	 * Lookups served by a region already mapped.  A cursor re-pointed
	 * within the region it pins is not counted (that path touches no
	 * shared state).
	 */
	uint64_t hits;
	uint64_t misses;            /**< use_region that had to map */
	uint64_t evictions;         /**< regions unmapped to make room (LRU) */
	uint64_t collected;         /**< regions unmapped by collect/flush */
	uint64_t retired;           /**< regions dropped because the file changed */
	uint64_t mmap_calls;        /**< successful mmap(2) calls */
	uint64_t map_failures;      /**< failed open/fstat/mmap attempts */
	uint64_t limit_refusals;    /**< -EAGAIN/-ENOMEM returned by a limit */
	uint64_t overcommits;       /**< soft memory limit exceeded */
	uint64_t fd_waits;          /**< waits for a descriptor slot */
	uint64_t sigbus_caught;     /**< guarded copies that faulted */
};

/**
 * Fill `out` with a snapshot of the manager's counters.  Thread-safe; the
 * fields are read one by one, so they need not be mutually consistent
 * under concurrent use.
 */
SMMAP_EXPORT void smmap_stats_get(struct smmap_stats *out,
				  const smmap_manager *m);

/**
 * Take one slot of the manager's descriptor budget (max_fds), waiting until
 * one is free.  For callers that open descriptors of their own (fallback
 * reads, directory listings) and must stay within the same bound.  Never
 * call the library's mapping functions while holding a slot: with
 * max_fds == 1 that would wait forever.  Thread-safe.
 */
SMMAP_EXPORT void smmap_fd_acquire(smmap_manager *m);
/** Give back a slot taken by smmap_fd_acquire().  Thread-safe. */
SMMAP_EXPORT void smmap_fd_release(smmap_manager *m);

/* ------------------------------------------------------------------------
 * Files
 *
 * A file handle names a file and says how to open it when a window must be
 * mapped.  Handles for the same file (same st_dev and st_ino), whether
 * created by path, by descriptor or by opener, share one set of regions.
 * ------------------------------------------------------------------------ */

/**
 * A caller-supplied way to open a file.  `open` returns a new read-only
 * descriptor or a negative errno value; the library closes it after
 * mapping.  It is called without library locks held, while the library
 * holds one descriptor slot for it, from any thread.  Return -ESTALE when
 * the file found is no longer the one the handle was created for.
 */
struct smmap_opener {
	int (*open)(void *ctx);
	void *ctx;
};

/**
 * A handle on the file at `path` (stat'ed now; opened with O_RDONLY |
 * O_CLOEXEC | `open_flags` whenever a window is mapped).  If the path later
 * names another file, the handle follows it once a change is noticed.
 * @return 0, -errno from stat(2), -ENOMEM, -EINVAL.
 */
SMMAP_EXPORT int smmap_file_new_path(smmap_file **out, smmap_manager *m,
				     const char *path, int open_flags);

/**
 * A handle on the open descriptor `fd`, which is borrowed: it must stay open
 * while the handle or a cursor on it is alive.
 * @return 0, -errno from fstat(2), -ENOMEM, -EINVAL.
 */
SMMAP_EXPORT int smmap_file_new_fd(smmap_file **out, smmap_manager *m, int fd);

/**
 * A handle that opens the file through `opener` only when a window must be
 * mapped, so no descriptor is held in between.  `st` identifies the file
 * (st_dev, st_ino) and gives its size and times.
 * @return 0, -ENOMEM, -EINVAL.
 */
SMMAP_EXPORT int smmap_file_new_opener(smmap_file **out, smmap_manager *m,
				       const struct smmap_opener *opener,
				       const struct stat *st);

/**
 * Drop the caller's reference.  Cursors keep their own references, so a
 * handle may be freed while cursors still use it.  NULL is a no-op.
 */
SMMAP_EXPORT void smmap_file_free(smmap_file *f);

/**
 * Compare the file with what the handle last saw (st_dev, st_ino, size,
 * mtime, ctime).  `st` is the caller's fresh stat, or NULL to stat the file
 * now (through the path, the descriptor or the opener).  On a change,
 * regions that no longer fit the file are retired - those reaching past
 * its new end and those cut short by its old end - unused ones at once,
 * used ones when their last cursor leaves them; new windows see the new
 * size.  Full windows inside the file stay (a shared mapping shows the
 * file's current bytes).  A path handle whose path now names another file
 * follows it.  Thread-safe.
 * @return 1 changed, 0 unchanged; -ESTALE when a descriptor or opener
 *         handle's file was replaced; other -errno (the handle is left
 *         unchanged).
 */
SMMAP_EXPORT int smmap_file_revalidate(smmap_file *f, const struct stat *st);

/** The size the handle currently knows.  Thread-safe. */
SMMAP_EXPORT uint64_t smmap_file_size(const smmap_file *f);

/**
 * Read through the file itself, not a mapping: open (within the descriptor
 * budget), pread(2), close.  The fallback for files that cannot be mapped
 * or when limits leave no room.  Thread-safe.
 * @return bytes read (short at end of file), or -errno.
 */
SMMAP_EXPORT ssize_t smmap_file_pread(smmap_file *f, void *buf, size_t len,
				      int64_t offset);

/* ------------------------------------------------------------------------
 * Cursors (smmap's WindowCursor)
 *
 * A cursor lives in caller memory (usually the stack) and pins at most one
 * region.  Fields are private.
 * ------------------------------------------------------------------------ */

typedef struct smmap_cursor {
	/* private: */
	smmap_manager *man_;
	smmap_file *file_;
	struct smmap__region *region_;
	const unsigned char *rbase_; /* region bytes, cached for the fast path */
	uint64_t rofs_;              /* region's file offset */
	size_t rlen_;                /* region's length */
	uint64_t ofs_;               /* cursor's file offset */
	size_t size_;                /* cursor's length */
} smmap_cursor;

/** An unassociated cursor (smmap's WindowCursor(manager)).  Never fails. */
SMMAP_EXPORT void smmap_cursor_init(smmap_cursor *c, smmap_manager *m);

/**
 * A cursor associated with `f` (takes a reference on it) but not valid
 * until smmap_cursor_use_region().
 * @return 0, -EINVAL when f is NULL.
 */
SMMAP_EXPORT int smmap_cursor_init_file(smmap_cursor *c, smmap_file *f);

/** smmap's make_cursor(path): smmap_file_new_path() + init_file(). */
SMMAP_EXPORT int smmap_cursor_init_path(smmap_cursor *c, smmap_manager *m,
					const char *path);

/** smmap's make_cursor(fd): smmap_file_new_fd() + init_file(). */
SMMAP_EXPORT int smmap_cursor_init_fd(smmap_cursor *c, smmap_manager *m,
				      int fd);

/**
 * Release the region and the file (smmap's _destroy/__del__).  The cursor
 * is left unassociated on its manager and may be reused.  Idempotent.
 */
SMMAP_EXPORT void smmap_cursor_dispose(smmap_cursor *c);

/**
 * Make `dst` a copy of `src` (smmap's copy()/assign(), bug B4 fixed): same
 * manager and file, the same region pinned once more, and able to map new
 * regions on its own.  `dst` is disposed first.
 * @return 0, -EINVAL if dst == src.
 */
SMMAP_EXPORT int smmap_cursor_copy(smmap_cursor *dst, const smmap_cursor *src);

/**
 * Point the cursor at `offset`, mapping a window if needed.  `size` 0 means
 * "as much as possible"; the result may be shorter than asked, so callers
 * loop.  When the cursor's own region already covers `offset` no lock is
 * taken.  Thread-safe across cursors.
 * @return 1 valid; 0 when offset is at or past the end of the file (the
 *         cursor becomes invalid, as in smmap); -EINVAL (unassociated
 *         cursor, negative or overflowing range); -EAGAIN when a limit
 *         cannot be met because every region is in use (retry after other
 *         cursors move on); -ENOMEM when the window alone exceeds a hard
 *         memory limit; -ESTALE from an opener; other -errno from
 *         open/fstat/mmap after one flush-and-retry.  On error the cursor
 *         is invalid.
 */
SMMAP_EXPORT int smmap_cursor_use_region(smmap_cursor *c, int64_t offset,
					 size_t size);

/** Unpin the region; the cursor stays associated but invalid. */
SMMAP_EXPORT void smmap_cursor_unuse_region(smmap_cursor *c);

/** True when the cursor points at mapped bytes. */
SMMAP_EXPORT bool smmap_cursor_is_valid(const smmap_cursor *c);
/** True when the cursor has a file. */
SMMAP_EXPORT bool smmap_cursor_is_associated(const smmap_cursor *c);

/**
 * The bytes at ofs_begin() (smmap's buffer()), smmap_cursor_size() long, or
 * NULL when invalid.  Valid until the cursor's next use_region, unuse,
 * copy-into or dispose.  Reading it faults (SIGBUS) if the file was
 * truncated underneath: use smmap_cursor_read() or hand the pointer to the
 * kernel (write(2), writev(2)) where that matters.
 */
SMMAP_EXPORT const void *smmap_cursor_buffer(const smmap_cursor *c);

/**
 * The whole pinned region (smmap's map()): its bytes, file offset and
 * length.  NULL when invalid.  Same lifetime and caveat as buffer().
 */
SMMAP_EXPORT const void *smmap_cursor_map(const smmap_cursor *c,
					  uint64_t *region_ofs,
					  size_t *region_len);

/** File offset of the cursor's first byte (0 when invalid). */
SMMAP_EXPORT uint64_t smmap_cursor_ofs_begin(const smmap_cursor *c);
/** File offset one past the cursor's last byte (0 when invalid). */
SMMAP_EXPORT uint64_t smmap_cursor_ofs_end(const smmap_cursor *c);
/** Bytes the cursor exposes (0 when invalid). */
SMMAP_EXPORT size_t smmap_cursor_size(const smmap_cursor *c);
/** True when `ofs` is within [ofs_begin, ofs_end) of a valid cursor. */
SMMAP_EXPORT bool smmap_cursor_includes_ofs(const smmap_cursor *c,
					    int64_t ofs);

/**
 * The file's size as the cursor's file handle knows it.
 * @return 0, -EINVAL when unassociated.
 */
SMMAP_EXPORT int smmap_cursor_file_size(uint64_t *out, const smmap_cursor *c);

/**
 * The path a path-keyed cursor was made from (borrowed, valid while the
 * cursor is associated).  @return 0, -EINVAL for fd/opener files or when
 * unassociated (smmap raises ValueError).
 */
SMMAP_EXPORT int smmap_cursor_path(const char **out, const smmap_cursor *c);
/** The descriptor of an fd-keyed cursor.  @return 0 or -EINVAL. */
SMMAP_EXPORT int smmap_cursor_fd(int *out, const smmap_cursor *c);
/** The cursor's file handle (borrowed), NULL when unassociated. */
SMMAP_EXPORT smmap_file *smmap_cursor_file(const smmap_cursor *c);

/** What smmap's cursor.region() exposes. */
struct smmap_region_info {
	uint64_t ofs;          /**< file offset of the region */
	size_t size;           /**< mapped length */
	unsigned client_count; /**< 1 (the manager) + cursors pinning it */
};

/**
 * Describe the pinned region.  Thread-safe with respect to other cursors.
 * @return 0, -EINVAL when the cursor is invalid.
 */
SMMAP_EXPORT int smmap_cursor_region(struct smmap_region_info *out,
				     const smmap_cursor *c);

/**
 * Copy `len` bytes at `offset` into `dst` through the cursor, across as
 * many windows as needed.  Safe against files truncated underneath: a
 * fault turns into -EIO (and the file is revalidated), never a crash.
 * @return bytes copied (short only at end of file), or -errno as
 *         use_region, or -EIO.  If some bytes were copied before an error,
 *         their count is returned.
 */
SMMAP_EXPORT ssize_t smmap_cursor_read(smmap_cursor *c, void *dst, size_t len,
				       int64_t offset);

/* ------------------------------------------------------------------------
 * Buffers (smmap's SlidingWindowMapBuffer)
 *
 * A buffer over a cursor, addressed relative to its own offset (smmap bug
 * B5 fixed): index 0 is the byte at the offset given to begin().
 * ------------------------------------------------------------------------ */

typedef struct smmap_buffer {
	/* private: */
	smmap_cursor *cursor_;
	uint64_t base_;
	uint64_t len_;
} smmap_buffer;

/** An empty buffer without a cursor: length 0 (B19 fixed). */
SMMAP_EXPORT void smmap_buffer_init(smmap_buffer *b);

/**
 * Start access at `offset` for `size` bytes (SMMAP_TO_END for the rest of
 * the file; clamped to the end of the file).  `c` replaces the buffer's
 * cursor unless NULL.  The cursor stays owned by the caller.
 * @return 0; -EINVAL without an associated cursor or for a negative offset;
 *         -ERANGE when offset is at or past the end of a non-empty file (an
 *         empty file gives an empty buffer at offset 0, B15); -errno from
 *         use_region.  On error the length is 0 (B20 fixed).
 */
SMMAP_EXPORT int smmap_buffer_begin(smmap_buffer *b, smmap_cursor *c,
				    int64_t offset, uint64_t size);

/** End access: length 0, the cursor's region unpinned.  Idempotent. */
SMMAP_EXPORT void smmap_buffer_end(smmap_buffer *b);

/** Length in bytes (0 before begin and after end). */
SMMAP_EXPORT uint64_t smmap_buffer_len(const smmap_buffer *b);

/** The buffer's cursor (borrowed), or NULL. */
SMMAP_EXPORT smmap_cursor *smmap_buffer_cursor(const smmap_buffer *b);

/**
 * The byte at `index`; a negative index counts from the end.
 * @return 0..255; -ERANGE outside the buffer; -EINVAL when not begun; -EIO
 *         when the file was truncated underneath; -errno from use_region.
 */
SMMAP_EXPORT int smmap_buffer_byte(smmap_buffer *b, int64_t index);

/**
 * Copy bytes [start, end) into `dst` (end - start bytes), across any
 * number of windows.  Negative indices count from the end.
 * @return bytes copied: end - start, or fewer when the file shrank
 *         underneath; -EINVAL when end < start (B6: never hangs) or without
 *         an associated cursor; -ERANGE when a bound lies outside [0, len];
 *         -EIO when the file was truncated underneath before any byte could
 *         be copied; -errno from use_region.
 */
SMMAP_EXPORT ssize_t smmap_buffer_copy(smmap_buffer *b, void *dst,
				       int64_t start, int64_t end);

/* ------------------------------------------------------------------------
 * Utilities
 * --------------------------------------------------------------------- */

/** Mapping granularity (smmap's ALLOCATIONGRANULARITY): the page size. */
SMMAP_EXPORT size_t smmap_granularity(void);

/**
 * Round `num` down (or up when round_up) to the granularity (smmap's
 * align_to_mmap).  Rounding up saturates at the largest aligned value.
 */
SMMAP_EXPORT uint64_t smmap_align_to_mmap(uint64_t num, bool round_up);

/** True on 64-bit platforms (smmap's is_64_bit). */
SMMAP_EXPORT bool smmap_is_64_bit(void);

/**
 * Install the SIGBUS handler that lets the library's own copies from
 * mappings fail with -EIO, unless it is already installed.  Faults outside
 * a guarded copy go to the handler found at installation (or the default
 * action).  smmap_manager_new() calls this; call it again if something
 * replaced the handler.
 * @return 0 or -errno from sigaction(2).
 */
SMMAP_EXPORT int smmap_sigbus_install(void);

#ifdef __cplusplus
}
#endif

#endif /* SMMAP_H */
