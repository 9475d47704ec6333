/*
 * fuzz_cursor.c - libFuzzer target: cursors and buffers on files that
 * change underneath, against a model.
 *
 * Each input describes one manager (policy, window size, max_mapped, hard
 * or soft, max_handles 1..8 or unlimited, max_fds; now and then an invalid
 * option, which smmap_manager_new() must refuse with -EINVAL), two files
 * (sizes from 0 to ~300 KiB, with 0, 1, page-1, page, page+1 and window
 * sizes +-1 favoured; written with position-dependent bytes into a
 * directory on tmpfs, /dev/shm, or $TMPDIR) and then up to MAX_OPS
 * operations:
 *   - file handles by path, descriptor and opener; cursors made from them,
 *     by path (also a missing one), by descriptor, unassociated; dispose,
 *     copy (also onto itself), unuse, re-init;
 *   - use_region at offsets inside, at and past EOF, on window boundaries,
 *     negative and huge, with sizes up to and past INT64_MAX - offset;
 *   - smmap_cursor_read, smmap_file_pread, buffers (begin with or without a
 *     cursor, end, byte and copy with negative and out-of-range indices);
 *   - writes into the files, truncation (shrinking and growing) under live
 *     mappings, revalidation (with and without a stat), collect, a
 *     descriptor slot taken and given back, and a manager torn down and
 *     made again.
 *
 * The model is the files' current bytes.  After every operation:
 *   - return codes are the documented ones (smmap.h).  Where the library
 *     knows the file's current size and the cursor's region lies within
 *     the file ("exact" case) the result is predicted exactly: the window
 *     on the grid (idx * W clamped to EOF), the bytes, short reads only at
 *     EOF, -ENOMEM exactly when a hard limit is smaller than the window,
 *     -EAGAIN only where the regions pinned by the other cursors leave no
 *     room.  Otherwise (the file changed and the library has not looked
 *     yet) only what is always true is checked: bytes returned are the
 *     file's current bytes (zero past its end: the tail of the page that
 *     holds EOF), errors are -EIO/-EAGAIN/-ENOMEM, never a crash (the
 *     SIGBUS guard);
 *   - invariants: mappings <= max_handles; mapped bytes <= max_mapped when
 *     hard; no descriptor held; each valid cursor lies in its region, which
 *     is a grid window (or the whole file for the static policy) whose
 *     client count is the number of cursors on it (+1 while indexed);
 *     collect leaves exactly the regions the cursors pin mapped (none
 *     without cursors); revalidate returns 1 when the size changed, 0 when
 *     nothing did, and leaves the library knowing the real size; buffer
 *     lengths never reach past the end of the file;
 *   - at the end (and when the manager is remade) smmap_manager_free()
 *     is -EBUSY while handles or cursors remain and 0 after disposing
 *     everything; LeakSanitizer checks nothing is left behind.
 * abort() on any mismatch.
 */
#include "smmap.h"

#include "fuzz_input.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef __int128 i128;

#define NFILES 2
#define NCUR 4
#define NBUF 2
#define MAX_FILE (UINT64_C(320) << 10) /* largest file the ops make */
#define MAX_INITIAL (UINT64_C(300) << 10)
#define MAX_OPS 200
#define SAMPLE 4096 /* bytes compared at each end of a cursor's window */

enum { H_PATH, H_FD, H_OPENER, NKINDS };

struct mfile {
	char path[PATH_MAX];
	int fd;                      /* read-write, ours */
	uint64_t size;               /* real size */
	unsigned char *data;         /* real bytes, MAX_FILE long */
	unsigned gen;                /* pattern generation of new bytes */
	bool modified;               /* since the library last compared */
	smmap_file *h[NKINDS];
};

struct mcur {
	smmap_cursor c;
	int file;                    /* -1: not associated */
};

struct mbuf {
	smmap_buffer b;
	int cur;                     /* the buffer's cursor, -1: none */
	uint64_t base;
	uint64_t len;
};

static struct {
	smmap_manager *m;
	smmap_options o;
	uint64_t W;                  /* window size, 0 for static */
	bool hard;
	struct mfile f[NFILES];
	struct mcur cur[NCUR];
	struct mbuf buf[NBUF];
} S;

static uint64_t g;
/* SMMAP_FUZZ_TRACE=1: print every operation (to study a reproducer). */
static bool trace;
#define TRACE(...)                                                         \
	do {                                                               \
		if (trace)                                                 \
			dprintf(STDERR_FILENO, __VA_ARGS__);               \
	} while (0)
/* The initial bytes of file i, computed once. */
static unsigned char *initial[NFILES];
static char dir[PATH_MAX];
static char missing[PATH_MAX + 16];

/* The byte at pos of generation gen: position-dependent, so a read from
 * the wrong offset shows. */
static unsigned char pattern(uint64_t pos, unsigned gen)
{
	uint64_t h = (pos + 1) * UINT64_C(0x9e3779b97f4a7c15) ^
		     (uint64_t)gen * UINT64_C(0xbf58476d1ce4e5b9);

	h ^= h >> 31;
	h *= UINT64_C(0x94d049bb133111eb);
	return (unsigned char)(h >> 56);
}

static void cleanup(void)
{
	fuzz_rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	g = smmap_granularity();
	trace = getenv("SMMAP_FUZZ_TRACE") != NULL;
	if (!fuzz_tmpdir(dir, sizeof(dir), "fuzz-cursor"))
		abort();
	for (int i = 0; i < NFILES; i++) {
		snprintf(S.f[i].path, sizeof(S.f[i].path), "%s/file%d", dir, i);
		S.f[i].data = malloc(MAX_FILE);
		S.f[i].fd = -1;
		if (!S.f[i].data)
			abort();
	}
	for (int i = 0; i < NFILES; i++) {
		initial[i] = malloc(MAX_FILE);
		if (!initial[i])
			abort();
		for (uint64_t p = 0; p < MAX_FILE; p++)
			initial[i][p] = pattern(p, 1000 * (unsigned)i);
	}
	snprintf(missing, sizeof(missing), "%s/missing", dir);
	atexit(cleanup);
	return 0;
}

/* ---- files ------------------------------------------------------------ */


static void file_create(int fi, uint64_t size)
{
	struct mfile *f = &S.f[fi];

	unlink(f->path);
	f->fd = open(f->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	CHECK(f->fd >= 0);
	f->gen = 1000 * (unsigned)fi;
	memcpy(f->data, initial[fi], size);
	CHECK(write(f->fd, f->data, size) == (ssize_t)size);
	f->size = size;
	f->modified = false;
	memset(f->h, 0, sizeof(f->h));
}

/* Truncate (shrink or grow) the real file and the model. */
static void file_truncate(struct mfile *f, uint64_t size)
{
	TRACE("truncate %s %llu -> %llu\n", f->path,
	      (unsigned long long)f->size, (unsigned long long)size);
	CHECK(ftruncate(f->fd, (off_t)size) == 0);
	if (size > f->size)
		memset(f->data + f->size, 0, size - f->size);
	f->size = size;
	f->modified = true;
}

/* New bytes at [ofs, ofs + len), extending the file if needed. */
static void file_write(struct mfile *f, uint64_t ofs, uint64_t len)
{
	if (len == 0)
		return; /* writes nothing, extends nothing */
	TRACE("write %s [%llu, %llu)\n", f->path, (unsigned long long)ofs,
	      (unsigned long long)(ofs + len));
	f->gen++;
	if (ofs > f->size)
		memset(f->data + f->size, 0, ofs - f->size);
	for (uint64_t i = ofs; i < ofs + len; i++)
		f->data[i] = pattern(i, f->gen);
	CHECK(pwrite(f->fd, f->data + ofs, len, (off_t)ofs) == (ssize_t)len);
	if (ofs + len > f->size)
		f->size = ofs + len;
	f->modified = true;
}

static int opener_open(void *ctx)
{
	const struct mfile *f = ctx;
	int fd = open(f->path, O_RDONLY | O_CLOEXEC);

	return fd >= 0 ? fd : -errno;
}

/* ---- the model -------------------------------------------------------- */

struct win {
	uint64_t ofs;
	uint64_t len;
};

/* The grid window holding pos (< size). */
static struct win grid(uint64_t size, uint64_t pos)
{
	struct win w;

	if (S.W == 0) {
		w.ofs = 0;
		w.len = size;
	} else {
		w.ofs = pos / S.W * S.W;
		w.len = size - w.ofs < S.W ? size - w.ofs : S.W;
	}
	return w;
}

struct creg {
	bool valid;
	const unsigned char *base; /* region base: identifies the region */
	uint64_t ofs;
	uint64_t len;
};

static struct creg creg_of(int ci)
{
	struct creg r;
	size_t len = 0;

	r.base = smmap_cursor_map(&S.cur[ci].c, &r.ofs, &len);
	r.len = len;
	r.valid = r.base != NULL;
	return r;
}

static bool region_in_file(const struct creg *r, const struct mfile *f)
{
	return !r->valid || r->ofs + r->len <= f->size;
}

/* Distinct regions pinned by the cursors other than `skip` (-1: none). */
static void pinned(int skip, uint64_t *count, uint64_t *bytes)
{
	const unsigned char *seen[NCUR];
	int n = 0;

	*count = *bytes = 0;
	for (int i = 0; i < NCUR; i++) {
		struct creg r = creg_of(i);
		bool dup = false;

		if (i == skip || !r.valid)
			continue;
		for (int j = 0; j < n; j++)
			dup |= seen[j] == r.base;
		if (dup)
			continue;
		seen[n++] = r.base;
		(*count)++;
		*bytes += r.len;
	}
}

/* Could mapping a window of wlen bytes fail with -EAGAIN for cursor ci? */
static bool eagain_possible(int ci, uint64_t wlen)
{
	uint64_t n, bytes;

	pinned(ci, &n, &bytes);
	return n + 1 > S.o.max_handles ||
	       (S.hard && bytes + wlen > S.o.max_mapped);
}

/* The same when the window's length is unknown. */
static bool eagain_possible_any(int ci)
{
	uint64_t n, bytes;

	pinned(ci, &n, &bytes);
	return n + 1 > S.o.max_handles || (S.hard && n > 0);
}

static uint64_t lib_size(int ci)
{
	uint64_t size = 0;

	CHECK(smmap_cursor_file_size(&size, &S.cur[ci].c) == 0);
	return size;
}

/*
 * Exact case for cursor ci: the library knows the file's real size and the
 * cursor's region lies within the file, so nothing can fault and every
 * result is predictable.
 */
static bool exact(int ci)
{
	const struct mfile *f = &S.f[S.cur[ci].file];
	struct creg r = creg_of(ci);

	return lib_size(ci) == f->size && region_in_file(&r, f);
}

enum {
	R_EINVAL = 1 << 0,
	R_ZERO = 1 << 1,
	R_ONE = 1 << 2,
	R_ENOMEM = 1 << 3,
	R_EAGAIN = 1 << 4,
	R_EIO = 1 << 5,
	R_FAST = 1 << 6, /* flag: served by the cursor's own region */
};

static unsigned ret_bit(int ret)
{
	switch (ret) {
	case -EINVAL: return R_EINVAL;
	case 0: return R_ZERO;
	case 1: return R_ONE;
	case -ENOMEM: return R_ENOMEM;
	case -EAGAIN: return R_EAGAIN;
	case -EIO: return R_EIO;
	default: return 1u << 30; /* never expected */
	}
}

static bool covers(const struct creg *r, uint64_t pos)
{
	return r->valid && pos >= r->ofs && pos - r->ofs < r->len;
}

/* What smmap_cursor_use_region(ci, offset, size) may return. */
static unsigned expect_use(int ci, int64_t offset, uint64_t size)
{
	struct mcur *mc = &S.cur[ci];
	struct creg r;
	unsigned set;

	if (mc->file < 0)
		return R_EINVAL;
	if (offset < 0 || size > (uint64_t)INT64_MAX - (uint64_t)offset)
		return R_EINVAL;
	r = creg_of(ci);
	if (covers(&r, (uint64_t)offset))
		return R_ONE | R_FAST;
	if (exact(ci)) {
		const struct mfile *f = &S.f[mc->file];
		struct win w;

		if ((uint64_t)offset >= f->size)
			return R_ZERO;
		w = grid(f->size, (uint64_t)offset);
		if (S.hard && w.len > S.o.max_mapped)
			return R_ENOMEM;
		set = R_ONE;
		if (eagain_possible(ci, w.len))
			set |= R_EAGAIN;
		return set;
	}
	set = R_ZERO | R_ONE;
	if (S.hard)
		set |= R_ENOMEM;
	if (eagain_possible_any(ci))
		set |= R_EAGAIN;
	return set;
}

static void check_bytes(const struct mfile *f, uint64_t pos,
			const unsigned char *p, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		unsigned char want = pos + i < f->size ? f->data[pos + i] : 0;

		CHECK(p[i] == want);
	}
}

/* A valid cursor's bytes (only where its region lies within the file). */
static void check_cursor_bytes(int ci)
{
	const struct mfile *f = &S.f[S.cur[ci].file];
	struct creg r = creg_of(ci);
	const unsigned char *p = smmap_cursor_buffer(&S.cur[ci].c);
	uint64_t ofs = smmap_cursor_ofs_begin(&S.cur[ci].c);
	uint64_t n = smmap_cursor_size(&S.cur[ci].c);

	if (!r.valid || !region_in_file(&r, f))
		return;
	if (n <= 2 * SAMPLE) {
		CHECK(memcmp(p, f->data + ofs, n) == 0);
	} else {
		CHECK(memcmp(p, f->data + ofs, SAMPLE) == 0);
		CHECK(memcmp(p + n - SAMPLE, f->data + ofs + n - SAMPLE,
			     SAMPLE) == 0);
	}
}

/* ---- invariants ------------------------------------------------------- */

static void check_cursor(int ci)
{
	smmap_cursor *c = &S.cur[ci].c;
	struct creg r = creg_of(ci);
	struct smmap_region_info info;
	uint64_t size;

	CHECK(smmap_cursor_is_associated(c) == (S.cur[ci].file >= 0));
	CHECK(smmap_cursor_is_valid(c) == r.valid);
	if (S.cur[ci].file < 0) {
		CHECK(!r.valid);
		CHECK(smmap_cursor_file_size(&size, c) == -EINVAL);
		CHECK(smmap_cursor_file(c) == NULL);
	}
	if (!r.valid) {
		CHECK(smmap_cursor_buffer(c) == NULL);
		CHECK(smmap_cursor_size(c) == 0);
		CHECK(smmap_cursor_region(&info, c) == -EINVAL);
		CHECK(!smmap_cursor_includes_ofs(c, 0));
		return;
	}
	uint64_t ofs = smmap_cursor_ofs_begin(c);
	uint64_t n = smmap_cursor_size(c);
	int pins = 0;

	CHECK(r.len > 0 && n > 0);
	CHECK(ofs >= r.ofs && ofs - r.ofs < r.len);
	CHECK(n <= r.len - (ofs - r.ofs));
	CHECK(smmap_cursor_ofs_end(c) == ofs + n);
	CHECK((const unsigned char *)smmap_cursor_buffer(c) ==
	      r.base + (ofs - r.ofs));
	CHECK(smmap_cursor_includes_ofs(c, (int64_t)ofs));
	CHECK(smmap_cursor_includes_ofs(c, (int64_t)(ofs + n - 1)));
	CHECK(!smmap_cursor_includes_ofs(c, (int64_t)(ofs + n)));
	CHECK(!smmap_cursor_includes_ofs(c, -1));
	if (S.W) {
		CHECK(r.ofs % S.W == 0 && r.len <= S.W);
	} else {
		CHECK(r.ofs == 0);
	}
	CHECK(r.ofs + r.len <= MAX_FILE);
	for (int j = 0; j < NCUR; j++)
		pins += creg_of(j).base == r.base;
	CHECK(smmap_cursor_region(&info, c) == 0);
	CHECK(info.ofs == r.ofs && info.size == r.len);
	CHECK(info.client_count == (unsigned)pins ||
	      info.client_count == (unsigned)pins + 1);
}

static void check_all(void)
{
	struct smmap_stats st;
	uint64_t n, bytes;

	smmap_stats_get(&st, S.m);
	CHECK(st.mappings <= S.o.max_handles);
	if (S.hard)
		CHECK(st.mapped_bytes <= S.o.max_mapped);
	CHECK(st.fds == 0 && st.peak_fds <= S.o.max_fds);
	CHECK(st.window_size == S.W && smmap_window_size(S.m) == S.W);
	CHECK(st.max_mapped == S.o.max_mapped);
	CHECK(st.max_handles == S.o.max_handles);
	CHECK(st.max_fds == S.o.max_fds);
	CHECK(st.files <= NFILES);
	CHECK(st.open_files <= st.mappings && st.open_files <= NFILES);
	CHECK(st.mappings == smmap_num_file_handles(S.m));
	CHECK(st.mapped_bytes == smmap_mapped_memory_size(S.m));
	pinned(-1, &n, &bytes);
	CHECK(st.mappings >= n && st.mapped_bytes >= bytes);
	for (int i = 0; i < NCUR; i++)
		check_cursor(i);
	for (int i = 0; i < NBUF; i++) {
		struct mbuf *mb = &S.buf[i];

		CHECK(smmap_buffer_len(&mb->b) == mb->len);
		CHECK(smmap_buffer_cursor(&mb->b) ==
		      (mb->cur < 0 ? NULL : &S.cur[mb->cur].c));
	}
}

/* ---- picking arguments ------------------------------------------------ */

static uint64_t pick_size(struct input *in, uint64_t W, uint64_t cap)
{
	uint64_t w = W ? W : 4 * g;
	const uint64_t table[] = {
		0, 1, g - 1, g, g + 1, 2 * g, 3 * g + 7, w - 1, w, w + 1,
		2 * w - 1, 2 * w, 2 * w + 1,
	};
	uint64_t v;

	switch (in_u8(in) % 4) {
	case 0:
	case 1: v = IN_PICK(in, table); break;
	case 2: v = in_range(in, 0, 4 * g); break;
	default: v = in_range(in, 0, cap); break;
	}
	return v > cap ? cap : v;
}

/* An offset for cursor operations on a file of `size` bytes. */
static int64_t pick_offset(struct input *in, uint64_t size)
{
	uint64_t w = S.W ? S.W : size + 1;
	uint8_t k = in_u8(in);

	switch (k % 8) {
	case 0:
	case 1: return (int64_t)in_range(in, 0, size ? size - 1 : 0);
	case 2: return (int64_t)size + (int64_t)in_range(in, 0, 4) - 2;
	case 3: return (int64_t)(in_range(in, 0, size / w + 1) * w) +
		       (int64_t)in_range(in, 0, 2) - 1;
	case 4:
		if (k & 0x80)
			return -1;
		if (k & 0x40)
			return INT64_MIN;
		return -(int64_t)in_range(in, 1, 1u << 20);
	case 5: return INT64_MAX - (int64_t)in_range(in, 0, 2 * g);
	case 6: return (int64_t)in_u64(in);
	default: return 0;
	}
}

/* A length or size for an access at `offset`. */
static uint64_t pick_len(struct input *in, int64_t offset)
{
	uint64_t room = offset >= 0 ? (uint64_t)INT64_MAX - (uint64_t)offset
				    : 0;

	switch (in_u8(in) % 8) {
	case 0: return 0;
	case 1: return 1;
	case 2:
	case 3: return in_range(in, 1, 2 * g + 1);
	case 4: return in_range(in, 0, MAX_FILE + g);
	case 5: return room + in_range(in, 0, 2) - 1 + (room == 0);
	case 6: return in_u8(in) % 2 ? SIZE_MAX : (uint64_t)INT64_MAX;
	default: return in_range(in, 0, 3 * S.W + 1);
	}
}

/* ---- operations ------------------------------------------------------- */

static int handles_alive(void)
{
	int n = 0;

	for (int i = 0; i < NFILES; i++)
		for (int k = 0; k < NKINDS; k++)
			n += S.f[i].h[k] != NULL;
	for (int i = 0; i < NCUR; i++)
		n += S.cur[i].file >= 0;
	return n;
}

static void handle_free(struct mfile *f, int kind)
{
	smmap_file_free(f->h[kind]);
	f->h[kind] = NULL;
}

static void handle_new(int fi, int kind)
{
	struct mfile *f = &S.f[fi];
	struct smmap_opener op = { opener_open, f };
	struct stat st;
	int ret;

	handle_free(f, kind);
	TRACE("handle_new f%d kind %d\n", fi, kind);
	switch (kind) {
	case H_PATH:
		ret = smmap_file_new_path(&f->h[kind], S.m, f->path, 0);
		break;
	case H_FD:
		ret = smmap_file_new_fd(&f->h[kind], S.m, f->fd);
		break;
	default:
		CHECK(fstat(f->fd, &st) == 0);
		ret = smmap_file_new_opener(&f->h[kind], S.m, &op, &st);
		break;
	}
	CHECK(ret == 0 && f->h[kind] != NULL);
	CHECK(smmap_file_size(f->h[kind]) == f->size);
	f->modified = false;
}

static void cursor_dispose(int ci)
{
	smmap_cursor_dispose(&S.cur[ci].c);
	S.cur[ci].file = -1;
	CHECK(!smmap_cursor_is_associated(&S.cur[ci].c));
	CHECK(!smmap_cursor_is_valid(&S.cur[ci].c));
}


static void op_cursor_init(struct input *in, int ci)
{
	struct mcur *mc = &S.cur[ci];
	int fi = (int)in_range(in, 0, NFILES - 1);
	struct mfile *f = &S.f[fi];
	smmap_file *h;
	const char *p;
	int fd;

	cursor_dispose(ci);
	TRACE("cursor_init c%d f%d\n", ci, fi);
	switch (in_u8(in) % 6) {
	case 0:
		smmap_cursor_init(&mc->c, S.m);
		return;
	case 1:
		CHECK(smmap_cursor_init_path(&mc->c, S.m, f->path) == 0);
		CHECK(smmap_cursor_path(&p, &mc->c) == 0 &&
		      strcmp(p, f->path) == 0);
		CHECK(smmap_cursor_fd(&fd, &mc->c) == -EINVAL);
		f->modified = false; /* a new handle compared the file */
		break;
	case 2:
		CHECK(smmap_cursor_init_fd(&mc->c, S.m, f->fd) == 0);
		CHECK(smmap_cursor_fd(&fd, &mc->c) == 0 && fd == f->fd);
		CHECK(smmap_cursor_path(&p, &mc->c) == -EINVAL);
		f->modified = false;
		break;
	case 3:
		CHECK(smmap_cursor_init_path(&mc->c, S.m, missing) == -ENOENT);
		CHECK(!smmap_cursor_is_associated(&mc->c));
		return;
	case 4:
		CHECK(smmap_cursor_init_file(&mc->c, NULL) == -EINVAL);
		CHECK(!smmap_cursor_is_associated(&mc->c));
		smmap_cursor_init(&mc->c, S.m); /* back on our manager */
		return;
	default:
		h = f->h[in_range(in, 0, NKINDS - 1)];
		if (!h) {
			smmap_cursor_init(&mc->c, S.m);
			return;
		}
		CHECK(smmap_cursor_init_file(&mc->c, h) == 0);
		CHECK(smmap_cursor_file(&mc->c) == h);
		mc->file = fi;
		return;
	}
	mc->file = fi;
	CHECK(lib_size(ci) == f->size);
}

static void op_use_region(struct input *in, int ci)
{
	struct mcur *mc = &S.cur[ci];
	uint64_t fsize = mc->file >= 0 ? S.f[mc->file].size : 0;
	int64_t offset = pick_offset(in, fsize);
	uint64_t size = pick_len(in, offset);
	struct creg before = creg_of(ci), r;
	unsigned set;
	bool ex;
	int ret;

	if (size > SIZE_MAX)
		size = SIZE_MAX;
	set = expect_use(ci, offset, size);
	ex = !(set & (R_EINVAL | R_FAST)) && exact(ci);
	ret = smmap_cursor_use_region(&mc->c, offset, (size_t)size);
	TRACE("use_region c%d(f%d) ofs=%lld size=%llu -> %d (set %#x)\n", ci,
	      mc->file, (long long)offset, (unsigned long long)size, ret, set);
	CHECK(ret_bit(ret) & set);
	if (ret != 1) {
		CHECK(!smmap_cursor_is_valid(&mc->c));
		return;
	}
	r = creg_of(ci);
	uint64_t avail = r.ofs + r.len - (uint64_t)offset;

	CHECK(covers(&r, (uint64_t)offset));
	CHECK(smmap_cursor_ofs_begin(&mc->c) == (uint64_t)offset);
	CHECK(smmap_cursor_size(&mc->c) ==
	      (size && size < avail ? size : avail));
	if (set & R_FAST) {
		CHECK(r.base == before.base && r.ofs == before.ofs &&
		      r.len == before.len);
	} else if (ex) {
		/* The grid window of the file's current size. */
		struct win w = grid(S.f[mc->file].size, (uint64_t)offset);

		CHECK(r.ofs == w.ofs && r.len == w.len);
	}
	check_cursor_bytes(ci);
}

/*
 * Is `ret` what smmap_cursor_read() may return in the exact case, for a
 * cursor that pinned region r before the call?  Walks the windows the read
 * crosses: it stops at EOF, with -ENOMEM (or the count so far) at a window
 * larger than a hard limit, and may stop with -EAGAIN (or the count) where
 * the other cursors' pins leave no room.
 */
static bool read_ok_exact(int ci, struct creg r, uint64_t pos, uint64_t len,
			  int64_t ret)
{
	const struct mfile *f = &S.f[S.cur[ci].file];
	uint64_t end = pos + len, done = 0;

	for (;;) {
		if (pos >= end)
			return ret == (int64_t)done;
		if (!covers(&r, pos)) {
			struct win w;

			if (pos >= f->size)
				return ret == (int64_t)done;
			w = grid(f->size, pos);
			if (S.hard && w.len > S.o.max_mapped)
				return ret == (done ? (int64_t)done : -ENOMEM);
			if (eagain_possible(ci, w.len) &&
			    ret == (done ? (int64_t)done : -EAGAIN))
				return true;
			r.valid = true;
			r.ofs = w.ofs;
			r.len = w.len;
		}
		uint64_t stop = r.ofs + r.len < end ? r.ofs + r.len : end;

		done += stop - pos;
		pos = stop;
	}
}

/* Outside the exact case: what is always true of a read's result. */
static bool read_ok_loose(int ci, uint64_t len, int64_t ret)
{
	if (ret >= 0)
		return (uint64_t)ret <= len;
	return ret == -EIO || (ret == -ENOMEM && S.hard) ||
	       (ret == -EAGAIN && eagain_possible_any(ci));
}

static unsigned char *dst_alloc(uint64_t len, size_t *alloc)
{
	unsigned char *p;

	/* Reads never go past the largest file: MAX_FILE bytes. */
	*alloc = len < MAX_FILE + 64 ? (size_t)len : MAX_FILE + 64;
	p = malloc(*alloc ? *alloc : 1);
	CHECK(p != NULL);
	memset(p, 0xa5, *alloc);
	return p;
}

static void check_canary(const unsigned char *p, size_t from, size_t alloc)
{
	for (size_t i = from; i < alloc; i++)
		CHECK(p[i] == 0xa5);
}

static void op_read(struct input *in, int ci)
{
	struct mcur *mc = &S.cur[ci];
	uint64_t fsize = mc->file >= 0 ? S.f[mc->file].size : 0;
	int64_t offset = pick_offset(in, fsize);
	uint64_t len = pick_len(in, offset);
	struct creg before = creg_of(ci);
	unsigned char *dst;
	size_t alloc;
	bool ex, bad;
	ssize_t ret;

	if (len > SIZE_MAX)
		len = SIZE_MAX;
	bad = mc->file < 0 || offset < 0 ||
	      len > (uint64_t)INT64_MAX - (uint64_t)offset;
	ex = !bad && exact(ci);
	dst = dst_alloc(bad ? 0 : len, &alloc);
	ret = smmap_cursor_read(&mc->c, dst, (size_t)len, offset);
	TRACE("read c%d(f%d) ofs=%lld len=%llu -> %zd%s\n", ci, mc->file,
	      (long long)offset, (unsigned long long)len, ret,
	      ex ? " (exact)" : "");
	if (bad) {
		CHECK(ret == -EINVAL);
	} else if (ex) {
		CHECK(read_ok_exact(ci, before, (uint64_t)offset, len, ret));
		if (ret >= 0)
			check_canary(dst, (size_t)ret, alloc);
	} else {
		CHECK(read_ok_loose(ci, len, ret));
	}
	if (ret > 0)
		check_bytes(&S.f[mc->file], (uint64_t)offset, dst,
			    (uint64_t)ret);
	if (ret == -EIO) {
		/* A fault: the cursor is let go and the file revalidated. */
		CHECK(!smmap_cursor_is_valid(&mc->c));
		CHECK(lib_size(ci) == S.f[mc->file].size);
	}
	free(dst);
}

static void op_copy(int dst, int src)
{
	struct mcur *d = &S.cur[dst], *s = &S.cur[src];
	struct creg rs = creg_of(src), rd;

	TRACE("copy c%d <- c%d\n", dst, src);
	if (dst == src) {
		CHECK(smmap_cursor_copy(&d->c, &s->c) == -EINVAL);
		return;
	}
	CHECK(smmap_cursor_copy(&d->c, &s->c) == 0);
	d->file = s->file;
	rd = creg_of(dst);
	CHECK(rd.valid == rs.valid && rd.base == rs.base);
	CHECK(smmap_cursor_ofs_begin(&d->c) == smmap_cursor_ofs_begin(&s->c));
	CHECK(smmap_cursor_size(&d->c) == smmap_cursor_size(&s->c));
	CHECK(smmap_cursor_file(&d->c) == smmap_cursor_file(&s->c));
}

static int64_t pick_index(struct input *in, uint64_t len)
{
	int64_t l = (int64_t)(len > INT64_MAX ? INT64_MAX : len);

	switch (in_u8(in) % 8) {
	case 0: return -1;
	case 1: return -l;
	case 2: return -l - 1;
	case 3: return 0;
	case 4: return l - 1;
	case 5: return l;
	case 6: return in_u8(in) % 2 ? INT64_MIN : INT64_MAX;
	default: return (int64_t)in_range(in, 0, 2 * (uint64_t)l + 4) - l - 2;
	}
}

static void op_buf_begin(struct input *in, int bi)
{
	struct mbuf *mb = &S.buf[bi];
	int pick = (int)in_range(in, 0, NCUR); /* NCUR: keep the cursor */
	int ci = pick < NCUR ? pick : mb->cur;
	uint64_t fsize = 0, size;
	int64_t offset;
	unsigned set = 0;
	bool ex = false;
	int ret;

	if (ci >= 0 && S.cur[ci].file >= 0)
		fsize = S.f[S.cur[ci].file].size;
	offset = pick_offset(in, fsize);
	if (in_u8(in) % 2) {
		const uint64_t sizes[] = { SMMAP_TO_END, 0, 1, g, fsize / 2,
					   (uint64_t)INT64_MAX };

		size = IN_PICK(in, sizes);
	} else {
		size = in_range(in, 0, fsize + 2);
	}
	if (ci >= 0 && S.cur[ci].file >= 0 && offset >= 0) {
		set = expect_use(ci, offset, 0);
		ex = !(set & R_FAST) && exact(ci);
	}
	ret = smmap_buffer_begin(&mb->b, pick < NCUR ? &S.cur[pick].c : NULL,
				 offset, size);
	TRACE("buffer_begin b%d c%d ofs=%lld size=%llu -> %d len=%llu "
	      "(set %#x)\n", bi, ci, (long long)offset,
	      (unsigned long long)size, ret,
	      (unsigned long long)smmap_buffer_len(&mb->b), set);
	mb->cur = ci;
	mb->base = offset >= 0 ? (uint64_t)offset : 0;
	mb->len = smmap_buffer_len(&mb->b);
	if (!set) {
		CHECK(ret == -EINVAL && mb->len == 0);
		return;
	}
	bool valid = smmap_cursor_is_valid(&S.cur[ci].c);
	uint64_t lsize = lib_size(ci);

	if (ret == 0 && valid) {
		CHECK(set & R_ONE);
		/* "clamped to the end of the file" */
		CHECK((uint64_t)offset < lsize);
		CHECK(mb->len == (size < lsize - (uint64_t)offset
					  ? size : lsize - (uint64_t)offset));
		if (ex)
			CHECK(lsize == S.f[S.cur[ci].file].size);
	} else if ((ret == 0 || ret == -ERANGE) && !valid) {
		/*
		 * Offset at or past EOF; or the cursor's own region, retired
		 * after a shrink, still covered offset (fast path) and the
		 * file no longer does: the same, the region let go.
		 */
		CHECK((set & R_ZERO) ||
		      ((set & R_FAST) && (uint64_t)offset >= lsize));
		CHECK((ret == 0) == (lsize == 0 && offset == 0));
		CHECK(mb->len == 0);
	} else {
		CHECK(ret < 0 && (ret_bit(ret) & set & ~(R_ZERO | R_ONE)));
		CHECK(mb->len == 0 && !valid);
	}
}

static void op_buf_byte(struct input *in, int bi)
{
	struct mbuf *mb = &S.buf[bi];
	int64_t index = pick_index(in, mb->len);
	int ci = mb->cur;
	i128 idx = index;
	uint64_t pos;
	unsigned set;
	bool ex;
	int ret;

	if (ci < 0 || S.cur[ci].file < 0) {
		CHECK(smmap_buffer_byte(&mb->b, index) == -EINVAL);
		return;
	}
	if (idx < 0)
		idx += (i128)mb->len;
	if (idx < 0 || idx >= (i128)mb->len) {
		CHECK(smmap_buffer_byte(&mb->b, index) == -ERANGE);
		return;
	}
	pos = mb->base + (uint64_t)idx;
	CHECK(pos <= INT64_MAX);
	set = expect_use(ci, (int64_t)pos, 0);
	ex = exact(ci);
	ret = smmap_buffer_byte(&mb->b, index);
	TRACE("buffer_byte b%d c%d index=%lld pos=%llu -> %d\n", bi, ci,
	      (long long)index, (unsigned long long)pos, ret);
	if (ret >= 0) {
		const struct mfile *f = &S.f[S.cur[ci].file];

		CHECK(set & R_ONE);
		CHECK(ret == (pos < f->size ? f->data[pos] : 0));
	} else if (ret == -EIO) {
		CHECK((set & R_ZERO) || !ex);
	} else {
		CHECK(ret_bit(ret) & set & (R_EAGAIN | R_ENOMEM));
	}
}

static void op_buf_copy(struct input *in, int bi)
{
	struct mbuf *mb = &S.buf[bi];
	int64_t start = pick_index(in, mb->len), end = pick_index(in, mb->len);
	int ci = mb->cur;
	i128 s = start, e = end, L = (int64_t)mb->len;
	unsigned char *dst;
	struct creg before;
	size_t alloc;
	uint64_t pos, n;
	bool ex;
	ssize_t ret;

	if (ci < 0 || S.cur[ci].file < 0) {
		CHECK(smmap_buffer_copy(&mb->b, NULL, start, end) == -EINVAL);
		return;
	}
	if (s < 0)
		s += L;
	if (e < 0)
		e += L;
	if (e < s) {
		CHECK(smmap_buffer_copy(&mb->b, NULL, start, end) == -EINVAL);
		return;
	}
	if (s < 0 || e > L) {
		CHECK(smmap_buffer_copy(&mb->b, NULL, start, end) == -ERANGE);
		return;
	}
	if (e == s) {
		CHECK(smmap_buffer_copy(&mb->b, NULL, start, end) == 0);
		return;
	}
	pos = mb->base + (uint64_t)s;
	n = (uint64_t)(e - s);
	before = creg_of(ci);
	ex = exact(ci);
	dst = dst_alloc(n, &alloc);
	ret = smmap_buffer_copy(&mb->b, dst, start, end);
	TRACE("buffer_copy b%d c%d [%lld, %lld) -> %zd\n", bi, ci,
	      (long long)start, (long long)end, ret);
	CHECK(ret != 0);
	if (ex) {
		CHECK(read_ok_exact(ci, before, pos, n, ret == -EIO ? 0 : ret));
		if (ret > 0)
			check_canary(dst, (size_t)ret, alloc);
	} else {
		CHECK(read_ok_loose(ci, n, ret));
	}
	if (ret > 0)
		check_bytes(&S.f[S.cur[ci].file], pos, dst, (uint64_t)ret);
	free(dst);
}

static void op_pread(struct input *in)
{
	struct mfile *f = &S.f[in_range(in, 0, NFILES - 1)];
	smmap_file *h = f->h[in_range(in, 0, NKINDS - 1)];
	int64_t offset = pick_offset(in, f->size);
	uint64_t len = pick_len(in, offset), want;
	unsigned char *dst;
	size_t alloc;
	ssize_t ret;

	if (!h)
		return;
	if (len > SIZE_MAX)
		len = SIZE_MAX;
	if (offset < 0 || len > (uint64_t)INT64_MAX - (uint64_t)offset) {
		ret = smmap_file_pread(h, NULL, (size_t)len, offset);
		CHECK(ret == -EINVAL);
		return;
	}
	/* pread(2) wants the whole buffer to be there: no longer than it. */
	dst = dst_alloc(len, &alloc);
	len = alloc;
	ret = smmap_file_pread(h, dst, (size_t)len, offset);
	want = (uint64_t)offset >= f->size ? 0 : f->size - (uint64_t)offset;
	want = len < want ? len : want;
	CHECK(ret == (ssize_t)want);
	check_bytes(f, (uint64_t)offset, dst, want);
	check_canary(dst, (size_t)want, alloc);
	free(dst);
}

static void op_revalidate(struct input *in)
{
	struct mfile *f = &S.f[in_range(in, 0, NFILES - 1)];
	smmap_file *h = f->h[in_range(in, 0, NKINDS - 1)];
	struct stat st, *stp = NULL;
	uint64_t before;
	int ret;

	if (!h) { /* through a cursor on the file, if any */
		for (int i = 0; i < NCUR && !h; i++)
			if (S.cur[i].file == f - S.f)
				h = smmap_cursor_file(&S.cur[i].c);
		if (!h) {
			CHECK(smmap_file_revalidate(NULL, NULL) == -EINVAL);
			return;
		}
	}
	if (in_u8(in) % 2) {
		CHECK(fstat(f->fd, &st) == 0);
		stp = &st;
	}
	before = smmap_file_size(h);
	ret = smmap_file_revalidate(h, stp);
	TRACE("revalidate f%d%s -> %d\n", (int)(f - S.f), stp ? " (stat)" : "",
	      ret);
	CHECK(ret == 0 || ret == 1);
	if (before != f->size)
		CHECK(ret == 1);
	if (!f->modified)
		CHECK(ret == 0);
	CHECK(smmap_file_size(h) == f->size);
	f->modified = false;
}

static void op_collect(void)
{
	struct smmap_stats st;
	uint64_t n, bytes, before, files = 0;
	size_t ret;

	pinned(-1, &n, &bytes);
	for (int fi = 0; fi < NFILES; fi++) {
		bool any = false;

		for (int i = 0; i < NCUR; i++)
			any |= S.cur[i].file == fi &&
			       smmap_cursor_is_valid(&S.cur[i].c);
		files += any;
	}
	before = smmap_num_file_handles(S.m);
	ret = smmap_collect(S.m);
	TRACE("collect -> %zu\n", ret);
	smmap_stats_get(&st, S.m);
	CHECK(ret == before - n);
	CHECK(st.mappings == n && st.mapped_bytes == bytes);
	CHECK(st.open_files == files);
	CHECK(smmap_num_open_files(S.m) == files);
}

static void op_fd_slot(void)
{
	struct smmap_stats st;

	smmap_fd_acquire(S.m);
	smmap_stats_get(&st, S.m);
	CHECK(st.fds == 1);
	smmap_fd_release(S.m);
}

/* ---- one input -------------------------------------------------------- */

/* Dispose of everything; smmap_manager_free() refuses until then. */
static void teardown(bool in_collect)
{
	if (trace) {
		struct smmap_stats st;

		smmap_stats_get(&st, S.m);
		TRACE("stats hits=%llu misses=%llu evictions=%llu retired=%llu "
		      "limit_refusals=%llu overcommits=%llu sigbus_caught=%llu "
		      "map_failures=%llu peak_mappings=%llu\n",
		      (unsigned long long)st.hits,
		      (unsigned long long)st.misses,
		      (unsigned long long)st.evictions,
		      (unsigned long long)st.retired,
		      (unsigned long long)st.limit_refusals,
		      (unsigned long long)st.overcommits,
		      (unsigned long long)st.sigbus_caught,
		      (unsigned long long)st.map_failures,
		      (unsigned long long)st.peak_mappings);
	}
	for (int i = 0; i < NBUF; i++) {
		smmap_buffer_end(&S.buf[i].b);
		S.buf[i].len = 0;
	}
	if (handles_alive())
		CHECK(smmap_manager_free(S.m) == -EBUSY);
	for (int i = 0; i < NCUR; i++)
		cursor_dispose(i);
	for (int i = 0; i < NFILES; i++)
		for (int k = 0; k < NKINDS; k++)
			handle_free(&S.f[i], k);
	if (in_collect) {
		struct smmap_stats st;
		uint64_t before = smmap_num_file_handles(S.m);

		CHECK(smmap_collect(S.m) == before);
		smmap_stats_get(&st, S.m);
		CHECK(st.mappings == 0 && st.mapped_bytes == 0);
		CHECK(st.open_files == 0 && st.files == 0);
	}
	CHECK(smmap_manager_free(S.m) == 0);
	S.m = NULL;
}

/*
 * Cursors 0 and 1 on file 0 (by path and by descriptor), 2 on file 1, 3
 * unassociated; buffers without cursors.
 */
static void setup_objects(void)
{
	for (int i = 0; i < NCUR; i++) {
		smmap_cursor_init(&S.cur[i].c, S.m);
		S.cur[i].file = -1;
	}
	CHECK(smmap_cursor_init_path(&S.cur[0].c, S.m, S.f[0].path) == 0);
	CHECK(smmap_cursor_init_fd(&S.cur[1].c, S.m, S.f[0].fd) == 0);
	CHECK(smmap_cursor_init_path(&S.cur[2].c, S.m, S.f[1].path) == 0);
	S.cur[0].file = S.cur[1].file = 0;
	S.cur[2].file = 1;
	S.f[0].modified = S.f[1].modified = false;
	for (int i = 0; i < NBUF; i++) {
		smmap_buffer_init(&S.buf[i].b);
		S.buf[i].cur = -1;
		S.buf[i].base = S.buf[i].len = 0;
	}
}

/* Read the options; false when they are invalid (and refused). */
static bool make_manager(struct input *in, uint64_t *sizes)
{
	const uint64_t ws_table[] = {
		1, g - 1, g, g + 1, 2 * g, 3 * g, 5000, 16 * g, 64 * g,
		UINT64_C(1) << 20, INT64_MAX / 2,
	};
	smmap_options *o = &S.o;
	bool is_static = in_u8(in) % 4 == 0, valid = true;
	uint64_t ws = in_u8(in) % 4 ? IN_PICK(in, ws_table)
				    : in_range(in, 1, 64 * g);
	uint64_t wx;
	int ret;

	smmap_options_init(o, is_static ? SMMAP_STATIC : SMMAP_SLIDING);
	CHECK(o->version == SMMAP_OPTIONS_VERSION);
	o->window_size = ws; /* ignored by the static policy */
	S.W = is_static ? 0 : smmap_align_to_mmap(ws, true);
	for (int i = 0; i < NFILES; i++)
		sizes[i] = pick_size(in, S.W, MAX_INITIAL);
	wx = S.W ? S.W : sizes[0] ? sizes[0] : g;
	const uint64_t mm_table[] = {
		wx, wx - 1, wx + 1, 2 * wx, 3 * wx, g, 1, 3 * g,
		UINT64_C(1) << 20, SMMAP_UNLIMITED,
	};
	o->max_mapped = in_u8(in) % 4 ? IN_PICK(in, mm_table)
				      : in_range(in, 1, UINT64_C(2) << 20);
	if (o->max_mapped == 0)
		o->max_mapped = 1;
	const uint64_t mh_table[] = { 1, 2, 3, 4, 5, 6, 7, 8, SMMAP_UNLIMITED };
	o->max_handles = IN_PICK(in, mh_table);
	o->max_fds = (unsigned)in_range(in, 1, 3);
	uint8_t fl = in_u8(in);

	o->flags = (fl & 1 ? SMMAP_HARD_MEMORY_LIMIT : 0) |
		   (fl & 2 ? SMMAP_NOATIME : 0);
	if (in_u8(in) % 16 == 0) { /* one invalid option */
		switch (in_u8(in) % 9) {
		case 0: o->version = 2; break;
		case 1: o->policy = (enum smmap_policy)7; break;
		case 2: o->window_size = 0; valid = is_static; break;
		case 3: o->window_size = INT64_MAX / 2 + 1; valid = is_static;
			break;
		case 4: o->window_size = UINT64_MAX; valid = is_static; break;
		case 5: o->max_mapped = 0; break;
		case 6: o->max_handles = 0; break;
		case 7: o->max_fds = 0; break;
		default: o->flags |= 1u << 7; break;
		}
		valid = valid && o->version == SMMAP_OPTIONS_VERSION &&
			o->policy <= SMMAP_STATIC && o->max_mapped &&
			o->max_handles && o->max_fds && !(o->flags & 0x80);
	}
	S.hard = o->flags & SMMAP_HARD_MEMORY_LIMIT;
	S.m = (smmap_manager *)(uintptr_t)1; /* reset to NULL on failure */
	ret = smmap_manager_new(&S.m, o);
	if (!valid) {
		CHECK(ret == -EINVAL && S.m == NULL);
		return false;
	}
	TRACE("manager %s W=%llu max_mapped=%llu%s max_handles=%llu "
	      "max_fds=%u files %llu %llu\n", is_static ? "static" : "sliding",
	      (unsigned long long)S.W, (unsigned long long)o->max_mapped,
	      S.hard ? " (hard)" : "", (unsigned long long)o->max_handles,
	      o->max_fds, (unsigned long long)sizes[0],
	      (unsigned long long)sizes[1]);
	CHECK(ret == 0 && S.m != NULL);
	CHECK(smmap_window_size(S.m) == S.W);
	CHECK(smmap_max_mapped_memory_size(S.m) == o->max_mapped);
	CHECK(smmap_max_file_handles(S.m) == o->max_handles);
	CHECK(smmap_max_fds(S.m) == o->max_fds);
	CHECK(smmap_num_file_handles(S.m) == 0);
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	uint64_t sizes[NFILES];

	if (!make_manager(&in, sizes))
		return 0;
	for (int i = 0; i < NFILES; i++)
		file_create(i, sizes[i]);
	setup_objects();
	check_all();

	for (int n = 0; n < MAX_OPS && !in_empty(&in); n++) {
		int ci = (int)in_range(&in, 0, NCUR - 1);
		int bi = (int)in_range(&in, 0, NBUF - 1);
		struct mfile *f = &S.f[in_range(&in, 0, NFILES - 1)];

		switch (in_u8(&in) % 20) {
		case 0:
		case 1: op_use_region(&in, ci); break;
		case 2: op_read(&in, ci); break;
		case 3:
			smmap_cursor_unuse_region(&S.cur[ci].c);
			CHECK(!smmap_cursor_is_valid(&S.cur[ci].c));
			break;
		case 4: op_copy(ci, (int)in_range(&in, 0, NCUR - 1)); break;
		case 5: op_cursor_init(&in, ci); break;
		case 6: cursor_dispose(ci); break;
		case 7: op_buf_begin(&in, bi); break;
		case 8:
			smmap_buffer_end(&S.buf[bi].b);
			S.buf[bi].len = 0;
			if (S.buf[bi].cur >= 0)
				CHECK(!smmap_cursor_is_valid(
					&S.cur[S.buf[bi].cur].c));
			break;
		case 9: op_buf_byte(&in, bi); break;
		case 10: op_buf_copy(&in, bi); break;
		case 11: op_pread(&in); break;
		case 12: file_truncate(f, pick_size(&in, S.W, MAX_FILE)); break;
		case 13: {
			uint64_t top = f->size + 2 * g < MAX_FILE
					       ? f->size + 2 * g : MAX_FILE;
			uint64_t ofs = in_range(&in, 0, top);
			uint64_t len = in_range(&in, 0, MAX_FILE - ofs < 3 * g
							      ? MAX_FILE - ofs
							      : 3 * g);

			file_write(f, ofs, len);
			break;
		}
		case 14: op_revalidate(&in); break;
		case 15: op_collect(); break;
		case 16: handle_new((int)(f - S.f),
				    (int)in_range(&in, 0, NKINDS - 1));
			break;
		case 17: handle_free(f, (int)in_range(&in, 0, NKINDS - 1));
			break;
		case 18: op_fd_slot(); break;
		default:
			if (in_u8(&in) % 4 == 0) { /* a new manager */
				teardown(in_u8(&in) % 2);
				CHECK(smmap_manager_new(&S.m, &S.o) == 0);
				setup_objects();
			} else {
				op_use_region(&in, ci);
			}
			break;
		}
		check_all();
	}

	teardown(true);
	for (int i = 0; i < NFILES; i++) {
		close(S.f[i].fd);
		S.f[i].fd = -1;
	}
	return 0;
}
