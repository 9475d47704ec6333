/*
 * options.c - the command line: smmapfs [options] SOURCE MOUNTPOINT.
 *
 * Our own -o options are taken out here; -f/-d/-s/max_threads/clone_fd go
 * to fuse_parse_cmdline(), the remaining mount options to fuse_session_new()
 * (which refuses unknown ones).  Every error is one line on stderr naming
 * the offending argument.  Nothing here touches the filesystem except the
 * checks of SOURCE and MOUNTPOINT in fs_check_paths().
 */
#include "fs.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KiB (UINT64_C(1) << 10)
#define MiB (UINT64_C(1) << 20)
#define GiB (UINT64_C(1) << 30)

/* Raw strings of our options, validated after parsing. */
struct raw {
	char *window_size;
	char *max_mapped;
	char *max_handles;
	char *max_fds;
	char *entry_timeout;
	char *attr_timeout;
	char *negative_timeout;
	char *read_ahead;
	char *max_background;
	char *source;
	char *mountpoint;
	char *extra;       /* a third positional argument */
	int help;
	int version;
};

enum { KEY_HELP, KEY_VERSION, KEY_RO, KEY_RW };

#define RAW(t, f) { t, offsetof(struct raw, f), 0 }

static const struct fuse_opt spec[] = {
	RAW("window_size=%s", window_size),
	RAW("max_mapped=%s", max_mapped),
	RAW("max_handles=%s", max_handles),
	RAW("max_fds=%s", max_fds),
	RAW("entry_timeout=%s", entry_timeout),
	RAW("attr_timeout=%s", attr_timeout),
	RAW("negative_timeout=%s", negative_timeout),
	RAW("read_ahead=%s", read_ahead),
	RAW("max_background=%s", max_background),
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_KEY("ro", KEY_RO),
	FUSE_OPT_KEY("rw", KEY_RW),
	FUSE_OPT_END
};

static void usage(const char *prog)
{
	printf(
"usage: %s [options] SOURCE MOUNTPOINT\n"
"\n"
"Mirror the directory SOURCE read-only at MOUNTPOINT, answering reads from\n"
"memory-mapped windows of SOURCE's files.  Descriptors, mappings and mapped\n"
"bytes stay within the limits below however many files clients open.\n"
"\n"
"smmapfs options (SIZE takes K, M, G, T suffixes, powers of 1024):\n"
"    -o window_size=SIZE    bytes per mapped window, rounded up to the page\n"
"                           size; 0 maps whole files (default 8M)\n"
"    -o max_mapped=SIZE     most bytes mapped at once (default 4G)\n"
"    -o max_handles=N       most mappings at once (default 4096)\n"
"    -o max_fds=N           most descriptors open on SOURCE at once\n"
"                           (default 16)\n"
"    -o entry_timeout=SECS  kernel caching of names (default 1)\n"
"    -o attr_timeout=SECS   kernel caching of attributes (default 1)\n"
"    -o negative_timeout=SECS  caching of missing names (default 0)\n"
"    -o read_ahead=SIZE     kernel readahead for the mount, set through its\n"
"                           bdi when root; 0 keeps the kernel's 128K\n"
"                           (default 1M: 1 MiB READ requests)\n"
"    -o max_background=N    kernel requests in flight (default: kernel's)\n"
"    -h, --help             this help\n"
"    -V, --version          version\n"
"\n"
"Statistics: getfattr -n " FS_STATS_XATTR " MOUNTPOINT, or SIGUSR1\n"
"(written to the log).  allow_other implies default_permissions.\n"
"\n"
"FUSE options:\n", prog);
	fuse_cmdline_help();
	fuse_lowlevel_help();
}

/* One line on stderr: "smmapfs: <message>". */
static void __attribute__((format(printf, 1, 2)))
err_line(const char *fmt, ...)
{
	va_list ap;

	fputs("smmapfs: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int opt_proc(void *data, const char *arg, int key,
		    struct fuse_args *outargs)
{
	struct raw *raw = data;

	(void)outargs;
	switch (key) {
	case KEY_HELP:
		raw->help = 1;
		return 0;
	case KEY_VERSION:
		raw->version = 1;
		return 0;
	case KEY_RO:
	case KEY_RW:
		/*
		 * Always read-only ("ro" is added back below).  mount(8)
		 * passes "rw" to every helper unless told "ro", so "rw" cannot
		 * be an error; it changes nothing.
		 */
		return 0;
	case FUSE_OPT_KEY_NONOPT:
		if (!raw->source)
			return (raw->source = strdup(arg)) ? 0 : -1;
		if (!raw->mountpoint)
			return (raw->mountpoint = strdup(arg)) ? 0 : -1;
		if (!raw->extra)
			raw->extra = strdup(arg);
		return 0;
	default:
		return 1;
	}
}

int fs_parse_size(const char *s, uint64_t *out)
{
	uint64_t v = 0, mult = 1;
	const char *p = s;

	if (!s || *s < '0' || *s > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	switch (*p) {
	case '\0': break;
	case 'k': case 'K': mult = KiB; p++; break;
	case 'm': case 'M': mult = MiB; p++; break;
	case 'g': case 'G': mult = GiB; p++; break;
	case 't': case 'T': mult = GiB * 1024; p++; break;
	default: return -1;
	}
	if (*p != '\0' || (v && mult > UINT64_MAX / v))
		return -1;
	*out = v * mult;
	return 0;
}

static int parse_count(const char *name, const char *s, uint64_t max,
		       uint64_t *out)
{
	if (fs_parse_size(s, out) != 0 || *out > max) {
		err_line("invalid %s '%s': expected a whole number", name, s);
		return -1;
	}
	return 0;
}

static int parse_seconds(const char *name, const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < 0 || v > 1e9) {
		err_line("invalid %s '%s': expected seconds >= 0", name, s);
		return -1;
	}
	*out = v;
	return 0;
}

static void set_defaults(struct fs_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->window_size = 8 * MiB;
	cfg->max_mapped = smmap_is_64_bit() ? 4 * GiB : GiB;
	cfg->max_handles = 4096;
	cfg->max_fds = 16;
	cfg->entry_timeout = 1.0;
	cfg->attr_timeout = 1.0;
	cfg->negative_timeout = 0.0;
	/*
	 * The kernel's 128 KiB readahead makes a sequential reader send four
	 * times as many READs as 1 MiB does: measured, 1 MiB readahead served
	 * a cold sequential pass 1.3x faster at half the daemon's CPU.
	 */
	cfg->read_ahead_kb = 1024;
}

/* Turn the raw strings into cfg; one error line on failure. */
static int apply_raw(struct fs_config *cfg, const struct raw *r)
{
	uint64_t page = smmap_granularity(), v;

	if (r->window_size) {
		if (fs_parse_size(r->window_size, &v) ||
		    v > (UINT64_C(1) << 40)) {
			err_line("invalid window_size '%s': expected a size up "
				 "to 1T such as 64K, 8M or 0", r->window_size);
			return -1;
		}
		cfg->window_size = smmap_align_to_mmap(v, true);
	}
	if (r->max_mapped && fs_parse_size(r->max_mapped, &cfg->max_mapped)) {
		err_line("invalid max_mapped '%s': expected a size such as "
			 "512M or 4G", r->max_mapped);
		return -1;
	}
	if (r->max_handles &&
	    parse_count("max_handles", r->max_handles, UINT32_MAX, &v) == 0)
		cfg->max_handles = v;
	else if (r->max_handles)
		return -1;
	if (r->max_fds) {
		if (parse_count("max_fds", r->max_fds, 65536, &v))
			return -1;
		cfg->max_fds = (unsigned)v;
	}
	if (r->entry_timeout &&
	    parse_seconds("entry_timeout", r->entry_timeout, &cfg->entry_timeout))
		return -1;
	if (r->attr_timeout &&
	    parse_seconds("attr_timeout", r->attr_timeout, &cfg->attr_timeout))
		return -1;
	if (r->negative_timeout &&
	    parse_seconds("negative_timeout", r->negative_timeout,
			  &cfg->negative_timeout))
		return -1;
	if (r->read_ahead) {
		if (fs_parse_size(r->read_ahead, &v) || v > GiB) {
			err_line("invalid read_ahead '%s': expected a size up "
				 "to 1G", r->read_ahead);
			return -1;
		}
		cfg->read_ahead_kb = (unsigned)((v + KiB - 1) / KiB);
		cfg->read_ahead_set = 1;
	}
	if (r->max_background) {
		if (parse_count("max_background", r->max_background, 65535,
				&v))
			return -1;
		cfg->max_background = (unsigned)v;
	}
	if (cfg->max_mapped < page) {
		err_line("max_mapped must be at least one page (%llu bytes), "
			 "got '%s'", (unsigned long long)page, r->max_mapped);
		return -1;
	}
	if (cfg->window_size && cfg->max_mapped < cfg->window_size) {
		err_line("max_mapped (%s) is smaller than one window "
			 "(window_size=%s): no window could ever be mapped",
			 r->max_mapped ? r->max_mapped : "default",
			 r->window_size ? r->window_size : "default");
		return -1;
	}
	if (cfg->max_handles == 0) {
		err_line("max_handles must be at least 1, got '%s'", r->max_handles);
		return -1;
	}
	if (cfg->max_fds == 0) {
		err_line("max_fds must be at least 1, got '%s'%s", r->max_fds,
			 "");
		return -1;
	}
	return 0;
}

static void raw_free(struct raw *r)
{
	free(r->window_size);
	free(r->max_mapped);
	free(r->max_handles);
	free(r->max_fds);
	free(r->entry_timeout);
	free(r->attr_timeout);
	free(r->negative_timeout);
	free(r->read_ahead);
	free(r->max_background);
	free(r->source);
	free(r->mountpoint);
	free(r->extra);
}

/* Positional arguments and the options libfuse's own parser keeps. */
static int take_positionals(struct fs_config *cfg, struct raw *raw,
			    struct fuse_args *args)
{
	if (raw->extra) {
		err_line("unexpected argument '%s' (usage: smmapfs [options] "
			 "SOURCE MOUNTPOINT)", raw->extra);
		return -1;
	}
	if (!raw->source) {
		err_line("missing SOURCE and MOUNTPOINT (usage: smmapfs "
			 "[options] SOURCE MOUNTPOINT)");
		return -1;
	}
	if (!raw->mountpoint) {
		err_line("missing MOUNTPOINT after SOURCE '%s'%s", raw->source,
			 "");
		return -1;
	}
	cfg->source = raw->source;
	cfg->mountpoint = raw->mountpoint;
	raw->source = raw->mountpoint = NULL;
	/* libfuse sees the mountpoint and a read-only mount. */
	if (fuse_opt_add_arg(args, cfg->mountpoint) ||
	    fuse_opt_add_arg(args, "-oro"))
		return -1;
	return 0;
}

/*
 * Is the mount option `name` among the -o options of args?  `name` is a
 * whole option ("allow_other") or, ending in '=', an option's name
 * ("fsname=").  Options come as "-oA,B" or "-o" "A,B" with "\," and "\\"
 * escaped (the form libfuse's parser leaves them in).  A plain substring
 * search would take "fsname=default_permissions" for default_permissions.
 */
static bool has_mount_opt(const struct fuse_args *args, const char *name)
{
	size_t n = strlen(name);
	bool prefix = n > 0 && name[n - 1] == '=';

	for (int i = 0; i < args->argc; i++) {
		const char *s = args->argv[i];

		if (strncmp(s, "-o", 2) != 0)
			continue;
		if (s[2] != '\0')
			s += 2;
		else if (i + 1 < args->argc)
			s = args->argv[++i];
		else
			break;
		while (*s) {
			const char *e = s;

			while (*e && *e != ',')
				e += e[0] == '\\' && e[1] ? 2 : 1;
			if ((size_t)(e - s) >= n && strncmp(s, name, n) == 0 &&
			    (prefix || (size_t)(e - s) == n))
				return true;
			s = *e ? e + 1 : e;
		}
	}
	return false;
}

/*
 * Unless told otherwise, name the mount after SOURCE (what df and
 * /proc/mounts show), escaping the characters libfuse's option syntax uses.
 */
static int add_fsname(struct fs_config *cfg, struct fuse_args *args)
{
	char *opt;
	size_t w = 0;

	if (has_mount_opt(args, "fsname="))
		return 0;
	opt = malloc(strlen(cfg->source) * 2 + sizeof("-ofsname="));
	if (!opt)
		return -1;
	w = (size_t)sprintf(opt, "-ofsname=");
	for (const char *p = cfg->source; *p; p++) {
		if (*p == ',' || *p == '\\')
			opt[w++] = '\\';
		opt[w++] = *p;
	}
	opt[w] = '\0';
	w = (size_t)fuse_opt_add_arg(args, opt);
	free(opt);
	return w ? -1 : 0;
}

static int take_cmdline(struct fs_config *cfg, struct fuse_args *args)
{
	struct fuse_cmdline_opts o;

	memset(&o, 0, sizeof(o));
	if (fuse_parse_cmdline(args, &o) != 0) {
		/* libfuse printed the reason, and may have kept a mountpoint. */
		free(o.mountpoint);
		return -1;
	}
	free(o.mountpoint);
	cfg->foreground = o.foreground;
	cfg->debug = o.debug;
	cfg->singlethread = o.singlethread;
	cfg->clone_fd = o.clone_fd;
	cfg->max_threads = o.max_threads;
	if (o.singlethread && (o.clone_fd || o.max_threads != 10)) {
		err_line("option -s (single thread) conflicts with %s",
			 o.clone_fd ? "clone_fd" : "max_threads");
		return -1;
	}
	return 0;
}

/* allow_other without default_permissions would let anyone read anything. */
static int add_permissions(struct fs_config *cfg, struct fuse_args *args)
{
	cfg->allow_other = has_mount_opt(args, "allow_other");
	cfg->default_permissions = has_mount_opt(args, "default_permissions");
	/* libfuse 3 takes both (allow_root becomes allow_other): refuse. */
	if (cfg->allow_other && has_mount_opt(args, "allow_root")) {
		err_line("options allow_other and allow_root are mutually "
			 "exclusive");
		return -1;
	}
	if (cfg->allow_other && !cfg->default_permissions) {
		if (fuse_opt_add_arg(args, "-odefault_permissions"))
			return -1;
		cfg->default_permissions = 1;
	}
	return 0;
}

int fs_parse_args(struct fs_config *cfg, struct fuse_args *fuse_args,
		  int argc, char **argv, bool *exit_now)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct raw raw;
	int ret = -1;

	*exit_now = false;
	set_defaults(cfg);
	memset(&raw, 0, sizeof(raw));
	*fuse_args = (struct fuse_args)FUSE_ARGS_INIT(0, NULL);
	if (fuse_opt_parse(&args, &raw, spec, opt_proc) != 0)
		goto out; /* libfuse printed the reason */
	if (raw.help || raw.version) {
		if (raw.help)
			usage(argv[0]);
		else
			printf("smmapfs %s (libsmmap %s, libfuse %s)\n",
			       SMMAPFS_VERSION, SMMAP_VERSION_STRING,
			       fuse_pkgversion());
		*exit_now = true;
		ret = 0;
		goto out;
	}
	if (apply_raw(cfg, &raw) || take_positionals(cfg, &raw, &args) ||
	    take_cmdline(cfg, &args) || add_permissions(cfg, &args) ||
	    add_fsname(cfg, &args))
		goto out;
	*fuse_args = args;
	args = (struct fuse_args)FUSE_ARGS_INIT(0, NULL);
	ret = 0;
out:
	raw_free(&raw);
	fuse_opt_free_args(&args);
	return ret;
}

void fs_config_dispose(struct fs_config *cfg)
{
	free(cfg->source);
	free(cfg->mountpoint);
	cfg->source = cfg->mountpoint = NULL;
}
