/*
 * main.c - smmapfs: checks the arguments, mounts, serves, unmounts.
 */
#include "fs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

struct fs *fs_global;

/* One line on stderr: "smmapfs: <message>[: <strerror(err)>]". */
static int __attribute__((format(printf, 2, 3)))
fail(int err, const char *fmt, ...)
{
	va_list ap;

	fputs("smmapfs: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (err) {
		char msg[128];

		fprintf(stderr, ": %s", strerror_r(err, msg, sizeof(msg)));
	}
	fputc('\n', stderr);
	return -1;
}

/* Decode the octal escapes of /proc/self/mountinfo paths in place. */
static void unescape(char *s)
{
	char *w = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '7' && s[2] &&
		    s[3]) {
			*w++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 +
				      (s[3] - '0'));
			s += 3;
		} else {
			*w++ = *s;
		}
	}
	*w = '\0';
}

/* "MAJOR:MINOR" as in /proc/self/mountinfo. */
static bool parse_dev(const char *s, dev_t *dev)
{
	char *end;
	unsigned long maj, min;

	errno = 0;
	maj = strtoul(s, &end, 10);
	if (end == s || *end != ':' || errno)
		return false;
	s = end + 1;
	min = strtoul(s, &end, 10);
	if (end == s || *end != '\0' || errno || maj > UINT_MAX ||
	    min > UINT_MAX)
		return false;
	*dev = makedev((unsigned)maj, (unsigned)min);
	return true;
}

/*
 * Look @path up in /proc/self/mountinfo.  On a match *dev (if not NULL)
 * gets the device of the top-most mount there.  Reading the table never
 * sends a request to a FUSE filesystem, our own included, unlike stat().
 */
static bool find_mount(const char *path, dev_t *dev)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[8192];
	bool found = false;

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		char *save = NULL, *tok = strtok_r(line, " ", &save);
		dev_t here = 0;
		bool have_dev = false;

		for (int i = 1; tok && i <= 4; i++) {
			tok = strtok_r(NULL, " ", &save);
			if (i == 2 && tok)
				have_dev = parse_dev(tok, &here);
		}
		if (!tok)
			continue;
		unescape(tok);
		if (strcmp(tok, path) != 0 || !have_dev)
			continue;
		found = true;
		if (dev)
			*dev = here;
	}
	fclose(f);
	return found;
}

static bool path_within(const char *inner, const char *outer)
{
	size_t n = strlen(outer);

	if (strcmp(outer, "/") == 0)
		return true;
	return strncmp(inner, outer, n) == 0 &&
	       (inner[n] == '\0' || inner[n] == '/');
}

/*
 * Replace *path by its canonical form (what = "SOURCE" or "MOUNTPOINT").
 * @return 0, or -1 after one error line.
 */
static int canonicalise(char **path, const char *what)
{
	char *real = realpath(*path, NULL);

	if (!real) {
		if (errno == ENOENT)
			return fail(0, "%s '%s' does not exist", what, *path);
		return fail(errno, "cannot resolve %s '%s'", what, *path);
	}
	free(*path);
	*path = real;
	return 0;
}

static int check_source(struct fs *fs)
{
	struct fs_config *cfg = &fs->cfg;
	const char *real;
	int fd;

	if (canonicalise(&cfg->source, "SOURCE"))
		return -1;
	real = cfg->source;
	fd = open(real, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return fail(errno == ENOTDIR ? 0 : errno,
			    errno == ENOTDIR ? "SOURCE '%s' is not a directory"
					     : "cannot read SOURCE '%s'",
			    real);
	close(fd);
	fs->root_fd = open(real, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fs->root_fd < 0 || fstat(fs->root_fd, &fs->root_st) != 0)
		return fail(errno, "cannot open SOURCE '%s'", real);
	/* Fails on kernels without openat2 (before Linux 5.6). */
	fd = fs_openat_beneath(fs, ".", O_PATH);
	if (fd == -ENOSYS)
		return fail(-fd, "cannot confine paths beneath SOURCE '%s' "
			    "with openat2 (Linux 5.6 or later is needed)", real);
	if (fd < 0)
		return fail(-fd, "cannot open SOURCE '%s' beneath itself", real);
	close(fd);
	return 0;
}

/*
 * Descriptors outside the max_fds budget: 0, 1, 2, /dev/fuse and SOURCE's
 * root, and one /dev/fuse per worker with clone_fd.  With fewer allowed,
 * the budget would promise descriptors the kernel refuses (EMFILE to
 * clients); raise the soft limit when the hard one allows, otherwise refuse
 * to start.
 */
static int check_nofile(const struct fs_config *cfg)
{
	rlim_t need = 5 + (rlim_t)cfg->max_fds;
	struct rlimit rl;

	if (cfg->clone_fd)
		need += cfg->max_threads;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return fail(errno, "cannot read RLIMIT_NOFILE");
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need)
		return 0;
	if (rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need) {
		rl.rlim_cur = need;
		if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
			return 0;
	}
	return fail(0, "max_fds=%u needs RLIMIT_NOFILE >= %llu (0, 1, 2, "
		    "/dev/fuse, SOURCE and max_fds), the limit is %llu: raise "
		    "it (ulimit -n) or lower max_fds", cfg->max_fds,
		    (unsigned long long)need,
		    (unsigned long long)rl.rlim_max);
}

static int check_mountpoint(struct fs *fs)
{
	struct fs_config *cfg = &fs->cfg;
	const char *real;
	struct stat st;

	if (canonicalise(&cfg->mountpoint, "MOUNTPOINT"))
		return -1;
	real = cfg->mountpoint;
	if (stat(real, &st) != 0)
		return fail(errno, "cannot stat MOUNTPOINT '%s'", real);
	if (!S_ISDIR(st.st_mode))
		return fail(0, "MOUNTPOINT '%s' is not a directory", real);
	if (find_mount(real, NULL))
		return fail(0, "MOUNTPOINT '%s' is already a mount point "
			    "(unmount it first)", real);
	if (path_within(real, cfg->source))
		return fail(0, "MOUNTPOINT '%s' lies inside SOURCE: the mirror "
			    "would contain itself", real);
	return 0;
}

static void fs_init(void *userdata, struct fuse_conn_info *conn)
{
	struct fs *fs = userdata;

	/* Replies point into mappings: splicing would only add copies. */
	conn->want &= ~(unsigned)(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE |
				  FUSE_CAP_SPLICE_MOVE);
	conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
	if (conn->capable & FUSE_CAP_AUTO_INVAL_DATA) {
		conn->want |= FUSE_CAP_AUTO_INVAL_DATA;
		atomic_store(&fs->auto_inval, true);
	}
	if (conn->capable & FUSE_CAP_CACHE_SYMLINKS)
		conn->want |= FUSE_CAP_CACHE_SYMLINKS;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	if (conn->capable & FUSE_CAP_ASYNC_READ)
		conn->want |= FUSE_CAP_ASYNC_READ;
	/* 1 MiB requests (max_pages follows max_write). */
	conn->max_write = FS_MAX_READ;
	/*
	 * The kernel keeps the smaller of the device's readahead and this,
	 * and libfuse lowers this to what the kernel offered at mount time:
	 * raise it so the value set_read_ahead() wrote survives INIT.
	 */
	if (fs->cfg.read_ahead_kb)
		conn->max_readahead = fs->cfg.read_ahead_kb * 1024u;
	if (fs->cfg.max_background) {
		conn->max_background = fs->cfg.max_background;
		conn->congestion_threshold = fs->cfg.max_background * 3 / 4;
	}
}

static int write_uint_file(const char *path, unsigned value)
{
	FILE *f = fopen(path, "we");
	int err;

	if (!f)
		return errno;
	err = fprintf(f, "%u\n", value) < 0 ? errno : 0;
	/* sysfs rejects a value when stdio flushes it, in fclose(). */
	if (fclose(f) != 0 && !err)
		err = errno;
	return err;
}

/*
 * Raise the mount's readahead through its backing device (root only).
 * Done before serving: the device comes from the mount table, not from a
 * stat() of the mountpoint, which would be a request to ourselves and,
 * if it were still in flight, would keep a signal from ending the daemon
 * and make umount fail with EBUSY.
 */
static void set_read_ahead(struct fs *fs)
{
	char path[128], msg[128];
	dev_t dev;
	int err;

	if (!find_mount(fs->cfg.mountpoint, &dev)) {
		snprintf(path, sizeof(path), "the mount table");
		err = ENOENT;
	} else {
		snprintf(path, sizeof(path),
			 "/sys/class/bdi/%u:%u/read_ahead_kb", major(dev),
			 minor(dev));
		/* Within the descriptor budget, like every descriptor. */
		smmap_fd_acquire(fs->man);
		err = write_uint_file(path, fs->cfg.read_ahead_kb);
		smmap_fd_release(fs->man);
	}
	/* The default is best effort (it needs root): report a failure
	 * only when the option was asked for. */
	if (err && fs->cfg.read_ahead_set)
		fs_log("smmapfs: cannot set read_ahead in %s: %s", path,
		       strerror_r(err, msg, sizeof(msg)));
}

static const struct fuse_lowlevel_ops *make_ops(void)
{
	static struct fuse_lowlevel_ops ops;

	memset(&ops, 0, sizeof(ops));
	ops.init = fs_init;
	ops.lookup = fs_op_lookup;
	ops.forget = fs_op_forget;
	ops.forget_multi = fs_op_forget_multi;
	ops.getattr = fs_op_getattr;
	ops.readlink = fs_op_readlink;
	ops.opendir = fs_op_opendir;
	ops.readdir = fs_op_readdir;
	ops.readdirplus = fs_op_readdirplus;
	ops.releasedir = fs_op_releasedir;
	ops.open = fs_op_open;
	ops.read = fs_op_read;
	ops.release = fs_op_release;
	ops.statfs = fs_op_statfs;
	ops.getxattr = fs_op_getxattr;
	ops.listxattr = fs_op_listxattr;
	ops.access = fs_op_access;
	fs_rofs_ops(&ops);
	return &ops;
}

static int make_manager(struct fs *fs)
{
	struct fs_config *cfg = &fs->cfg;
	smmap_options o;
	int err;

	smmap_options_init(&o, cfg->window_size ? SMMAP_SLIDING : SMMAP_STATIC);
	if (cfg->window_size)
		o.window_size = cfg->window_size;
	o.max_mapped = cfg->max_mapped;
	o.max_handles = cfg->max_handles;
	o.max_fds = cfg->max_fds;
	/* Bounds are hard for the filesystem: a read falls back instead. */
	o.flags = SMMAP_HARD_MEMORY_LIMIT;
	err = smmap_manager_new(&fs->man, &o);
	if (err)
		return fail(-err, "cannot create the region manager");
	return 0;
}

/* Serve until unmounted.  @return 0 for a clean end, else non-zero. */
static int serve(struct fs *fs)
{
	struct fuse_loop_config *lc;
	int ret;

	if (fs->cfg.singlethread) {
		ret = fuse_session_loop(fs->se);
	} else {
		lc = fuse_loop_cfg_create();
		if (!lc)
			return -1;
		fuse_loop_cfg_set_clone_fd(lc, (unsigned)fs->cfg.clone_fd);
		fuse_loop_cfg_set_max_threads(lc, fs->cfg.max_threads);
		ret = fuse_session_loop_mt(fs->se, lc);
		fuse_loop_cfg_destroy(lc);
	}
	/*
	 * libfuse returns the number of the signal that ended the loop: those
	 * are requests to unmount, so they end cleanly.
	 */
	if (ret == SIGINT || ret == SIGTERM || ret == SIGHUP)
		ret = 0;
	return ret;
}

/*
 * Start our helper threads with the signals that end the session blocked,
 * as libfuse does for its workers: only the thread running the session
 * loop may take them, because only it is woken by them.  A helper taking
 * SIGTERM would leave the daemon mounted until the next request.
 */
static int start_helpers(struct fs *fs)
{
	static const int ending[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT };
	sigset_t set, old;
	int err;

	sigemptyset(&set);
	for (size_t i = 0; i < sizeof(ending) / sizeof(ending[0]); i++)
		sigaddset(&set, ending[i]);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	err = fs_stats_signal_start(fs);
	if (!err)
		err = fs_inval_start(fs);
	/* Unblock only what was not blocked before (SIGUSR1 stays blocked). */
	sigemptyset(&set);
	for (size_t i = 0; i < sizeof(ending) / sizeof(ending[0]); i++)
		if (!sigismember(&old, ending[i]))
			sigaddset(&set, ending[i]);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	return err;
}

static int run(struct fs *fs, struct fuse_args *args)
{
	int ret = 1;

	fs->se = fuse_session_new(args, make_ops(), sizeof(struct fuse_lowlevel_ops),
				  fs);
	if (!fs->se)
		return 1; /* libfuse said why */
	if (fuse_set_signal_handlers(fs->se) != 0)
		goto out_destroy;
	if (fuse_session_mount(fs->se, fs->cfg.mountpoint) != 0)
		goto out_signals;
	if (fuse_daemonize(fs->cfg.foreground) != 0)
		goto out_unmount;
	if (!fs->cfg.foreground)
		fs_log_use_syslog(true);
	/* Threads start after daemonizing (fork keeps only the caller). */
	if (start_helpers(fs) != 0)
		goto out_threads;
	/* After libfuse's handlers, so that faults we do not own chain on. */
	smmap_sigbus_install();
	if (fs->cfg.read_ahead_kb)
		set_read_ahead(fs);
	ret = serve(fs) == 0 ? 0 : 1;
out_threads:
	fs_inval_stop(fs);
	fs_stats_signal_stop(fs);
out_unmount:
	fuse_session_unmount(fs->se);
out_signals:
	fuse_remove_signal_handlers(fs->se);
out_destroy:
	fuse_session_destroy(fs->se);
	fs->se = NULL;
	return ret;
}

int main(int argc, char **argv)
{
	struct fuse_args args;
	struct fs fs;
	bool exit_now;
	int ret = 1;

	memset(&fs, 0, sizeof(fs));
	fs.root_fd = -1;
	fs_global = &fs;
	if (fs_parse_args(&fs.cfg, &args, argc, argv, &exit_now) != 0)
		goto out;
	if (exit_now) {
		ret = 0;
		goto out;
	}
	if (check_nofile(&fs.cfg) || check_source(&fs) ||
	    check_mountpoint(&fs) || make_manager(&fs))
		goto out;
	pthread_mutex_init(&fs.lock, NULL);
	if (fs_nodes_init(&fs) != 0) {
		fail(ENOMEM, "cannot set up the node table");
		goto out_lock;
	}
	ret = run(&fs, &args);
	fs_dirs_dispose();
	fs_nodes_dispose(&fs);
out_lock:
	pthread_mutex_destroy(&fs.lock);
out:
	if (fs.man && smmap_manager_free(fs.man) != 0)
		fs_log("smmapfs: region manager still busy at exit");
	if (fs.root_fd >= 0)
		close(fs.root_fd);
	fuse_opt_free_args(&args);
	fs_config_dispose(&fs.cfg);
	return ret;
}
