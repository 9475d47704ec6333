/*
 * fuzz_options.c - libFuzzer target: smmapfs's command line.
 *
 * The input is split on NUL and newline bytes into at most MAX_ARGS
 * arguments, which follow argv[0] = "smmapfs" into fs_parse_args() (and
 * so through libfuse's fuse_opt_parse() and fuse_parse_cmdline()).  Every
 * argument, and the value after each '=' in it, also goes to
 * fs_parse_size(), which is checked against an exact reference model.
 *
 * What must hold (abort() otherwise; ASan, LeakSanitizer and UBSan catch
 * the rest):
 *  - fs_parse_size() accepts exactly /^[0-9]+[kKmMgGtT]?$/ whose value fits
 *    in 64 bits, with that value; accepted plain numbers round-trip through
 *    "%" PRIu64.
 *  - fs_parse_args() returns 0 or -1.  On success (no --help/--version):
 *    SOURCE and MOUNTPOINT are set; max_mapped >= the page size;
 *    window_size is page aligned, <= 1T, and 0 or <= max_mapped;
 *    1 <= max_handles <= UINT32_MAX; 1 <= max_fds <= 65536; timeouts
 *    finite in [0, 1e9]; read_ahead <= 1G; max_background <= 65535; -s
 *    excludes clone_fd and max_threads; the libfuse arguments are allocated,
 *    NULL-terminated, start with argv[0] and carry the mount options "ro",
 *    "fsname=..." and, when allow_other is asked for, "default_permissions"
 *    (as whole options: "fsname=default_permissions" is not one); an
 *    option that does not occur in the input keeps its default; nothing is
 *    printed.
 *  - --help/--version: success, exit_now, no libfuse arguments, no SOURCE,
 *    something printed on stdout, nothing on stderr.
 *  - Failure: no libfuse arguments, and exactly one line on stderr (the
 *    documented "every error is one line" of options.c).
 *  - fs_config_dispose() and fuse_opt_free_args() free everything (leaks
 *    fail the run).
 *
 * Output.  stdout and stderr are replaced, once, by counting FILE streams
 * that discard what they get (set SMMAP_FUZZ_VERBOSE=1 to see it): the
 * usage text and error lines would otherwise flood the log and slow the
 * fuzzer down.  Only the C streams are replaced (glibc lets one assign
 * `stdout`/`stderr`); file descriptor 2 stays open, so libFuzzer's own
 * output (which captured the original `stderr` at start-up) and sanitizer
 * reports (written to fd 2) still appear.
 */
#include "fs.h"

#include "fuzz_input.h"

#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_ARGS 16
#define MAX_INPUT_LEN 4096

#define KiB (UINT64_C(1) << 10)
#define MiB (UINT64_C(1) << 20)
#define GiB (UINT64_C(1) << 30)
#define TiB (UINT64_C(1) << 40)

/* ---- counting output streams ------------------------------------------ */

struct sink {
	size_t bytes;
	size_t lines;
	int echo_fd; /* -1: discard */
};

static struct sink out_sink, err_sink;

static ssize_t sink_write(void *cookie, const char *buf, size_t size)
{
	struct sink *s = cookie;

	s->bytes += size;
	for (size_t i = 0; i < size; i++)
		s->lines += buf[i] == '\n';
	if (s->echo_fd >= 0 && write(s->echo_fd, buf, size) < 0)
		s->echo_fd = -1; /* stop echoing, keep counting */
	return (ssize_t)size;
}

static FILE *sink_open(struct sink *s)
{
	cookie_io_functions_t io = { .write = sink_write };
	FILE *f = fopencookie(s, "w", io);

	if (!f)
		abort();
	setvbuf(f, NULL, _IONBF, 0);
	return f;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	bool verbose = getenv("SMMAP_FUZZ_VERBOSE") != NULL;

	(void)argc;
	(void)argv;
	out_sink.echo_fd = verbose ? dup(STDOUT_FILENO) : -1;
	err_sink.echo_fd = verbose ? dup(STDERR_FILENO) : -1;
	fflush(stdout);
	stdout = sink_open(&out_sink);
	stderr = sink_open(&err_sink);
	return 0;
}

/* ---- fs_parse_size() against a reference ------------------------------ */

static void check_size(const char *s)
{
	uint64_t got = 0xdeadbeef;
	int ret = fs_parse_size(s, &got);
	unsigned __int128 v = 0, mult = 1;
	bool ok = true, big = false;
	const char *p = s;

	/* The reference: exact arithmetic, then a range check. */
	if (*p < '0' || *p > '9')
		ok = false;
	for (; *p >= '0' && *p <= '9'; p++) {
		v = v * 10 + (unsigned)(*p - '0');
		if (v > UINT64_MAX)
			big = true, v = (unsigned __int128)UINT64_MAX + 1;
	}
	switch (*p) {
	case '\0': break;
	case 'k': case 'K': mult = KiB; p++; break;
	case 'm': case 'M': mult = MiB; p++; break;
	case 'g': case 'G': mult = GiB; p++; break;
	case 't': case 'T': mult = TiB; p++; break;
	default: ok = false; break;
	}
	if (*p != '\0')
		ok = false;
	if (big || v * mult > UINT64_MAX)
		ok = false;

	CHECK(ret == 0 || ret == -1);
	CHECK((ret == 0) == ok);
	if (ret != 0) {
		CHECK(got == 0xdeadbeef); /* untouched on failure */
		return;
	}
	CHECK(got == (uint64_t)(v * mult));
	if (mult == 1) {
		/* Round trip: the canonical decimal form parses to the same. */
		char buf[32];
		const char *digits = s;
		uint64_t again = 0;

		snprintf(buf, sizeof(buf), "%" PRIu64, got);
		while (digits[0] == '0' && digits[1] != '\0')
			digits++;
		CHECK(strcmp(buf, digits) == 0);
		CHECK(fs_parse_size(buf, &again) == 0 && again == got);
	} else {
		CHECK(got % mult == 0);
	}
}

/* ---- fs_parse_args() -------------------------------------------------- */

/* The input with libfuse's escapes undone, to look for option names. */
static char plain[MAX_INPUT_LEN + 1];

static bool is_octal(uint8_t c, char max)
{
	return c >= '0' && c <= (uint8_t)max;
}

static bool mentions(const char *opt)
{
	return strstr(plain, opt) != NULL;
}

/*
 * Is `opt` (a whole option, or a name ending in '=') among the mount
 * options in `a`, given as "-oOPT,..." or as "-o" "OPT,..." ("\," escapes a
 * comma; libfuse's parser turns the former form into the latter)?
 */
static bool has_mount_opt(const struct fuse_args *a, const char *opt)
{
	size_t n = strlen(opt);
	bool prefix = opt[n - 1] == '=';

	for (int i = 0; i < a->argc; i++) {
		const char *s = a->argv[i];

		if (strncmp(s, "-o", 2) != 0)
			continue;
		s = s[2] ? s + 2 : (i + 1 < a->argc ? a->argv[++i] : "");
		while (*s) {
			const char *e = s;

			while (*e && *e != ',')
				e += e[0] == '\\' && e[1] ? 2 : 1;
			if ((size_t)(e - s) >= n && strncmp(s, opt, n) == 0 &&
			    (prefix || (size_t)(e - s) == n))
				return true;
			s = *e ? e + 1 : e;
		}
	}
	return false;
}

static void check_config(const struct fs_config *c)
{
	uint64_t page = smmap_granularity();

	CHECK(c->source && c->mountpoint);
	CHECK(c->max_mapped >= page);
	CHECK(c->window_size % page == 0);
	CHECK(c->window_size <= TiB);
	CHECK(c->window_size == 0 || c->max_mapped >= c->window_size);
	CHECK(c->max_handles >= 1 && c->max_handles <= UINT32_MAX);
	CHECK(c->max_fds >= 1 && c->max_fds <= 65536);
	CHECK(isfinite(c->entry_timeout) && c->entry_timeout >= 0 &&
	      c->entry_timeout <= 1e9);
	CHECK(isfinite(c->attr_timeout) && c->attr_timeout >= 0 &&
	      c->attr_timeout <= 1e9);
	CHECK(isfinite(c->negative_timeout) && c->negative_timeout >= 0 &&
	      c->negative_timeout <= 1e9);
	CHECK(c->read_ahead_kb <= GiB / KiB);
	CHECK(c->max_background <= 65535);
	CHECK(!c->singlethread || (!c->clone_fd && c->max_threads == 10));
	CHECK(!c->allow_other || c->default_permissions);

	/* Options absent from the input keep their defaults. */
	if (!mentions("window_size="))
		CHECK(c->window_size == 8 * MiB);
	if (!mentions("max_mapped="))
		CHECK(c->max_mapped == (smmap_is_64_bit() ? 4 * GiB : GiB));
	if (!mentions("max_handles="))
		CHECK(c->max_handles == 4096);
	if (!mentions("max_fds="))
		CHECK(c->max_fds == 16);
	if (!mentions("entry_timeout="))
		CHECK(c->entry_timeout == 1.0);
	if (!mentions("attr_timeout="))
		CHECK(c->attr_timeout == 1.0);
	if (!mentions("negative_timeout="))
		CHECK(c->negative_timeout == 0.0);
	if (!mentions("read_ahead="))
		CHECK(c->read_ahead_kb == 1024 && !c->read_ahead_set);
	if (!mentions("max_background="))
		CHECK(c->max_background == 0);
}

static void check_fuse_args(const struct fuse_args *a,
			    const struct fs_config *c)
{
	CHECK(a->allocated && a->argc >= 1 && a->argv);
	CHECK(a->argv[a->argc] == NULL);
	CHECK(strcmp(a->argv[0], "smmapfs") == 0);
	for (int i = 0; i < a->argc; i++)
		CHECK(a->argv[i] != NULL);
	CHECK(has_mount_opt(a, "ro"));
	CHECK(has_mount_opt(a, "fsname="));
	if (c->allow_other)
		CHECK(has_mount_opt(a, "default_permissions"));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char buf[MAX_INPUT_LEN + 1];
	char *argv[MAX_ARGS + 2];
	int argc = 0;
	struct fs_config cfg;
	struct fuse_args fargs;
	bool exit_now = true;
	size_t i, np = 0;
	int ret;

	if (size > MAX_INPUT_LEN)
		return -1; /* not added to the corpus */
	memcpy(buf, data, size);
	buf[size] = '\0';
	/* libfuse unescapes "\X" to X and "\ooo" (octal) in -o options. */
	for (i = 0; i < size; i++) {
		char ch = (char)data[i];

		if (ch == '\\' && i + 3 < size && is_octal(data[i + 1], '3') &&
		    is_octal(data[i + 2], '7') && is_octal(data[i + 3], '7')) {
			ch = (char)((data[i + 1] - '0') * 64 +
				    (data[i + 2] - '0') * 8 +
				    (data[i + 3] - '0'));
			i += 3;
		} else if (ch == '\\') {
			continue;
		}
		plain[np++] = ch ? ch : '\n';
	}
	plain[np] = '\0';

	argv[argc++] = (char *)"smmapfs";
	for (char *p = buf, *end = buf + size; p <= end && argc <= MAX_ARGS;) {
		char *q = p;

		while (q < end && *q != '\0' && *q != '\n')
			q++;
		*q = '\0';
		argv[argc++] = p;
		p = q + 1;
	}
	argv[argc] = NULL;

	for (i = 1; i < (size_t)argc; i++) {
		const char *eq = strrchr(argv[i], '=');

		check_size(argv[i]);
		if (eq)
			check_size(eq + 1);
	}

	out_sink.bytes = out_sink.lines = 0;
	err_sink.bytes = err_sink.lines = 0;
	memset(&cfg, 0xa5, sizeof(cfg));
	memset(&fargs, 0xa5, sizeof(fargs));
	ret = fs_parse_args(&cfg, &fargs, argc, argv, &exit_now);
	fflush(stdout);
	fflush(stderr);

	CHECK(ret == 0 || ret == -1);
	if (ret == 0 && !exit_now) {
		check_config(&cfg);
		check_fuse_args(&fargs, &cfg);
		CHECK(err_sink.bytes == 0 && out_sink.bytes == 0);
	} else if (ret == 0) {
		CHECK(fargs.argc == 0 && fargs.argv == NULL);
		CHECK(cfg.source == NULL && cfg.mountpoint == NULL);
		CHECK(out_sink.bytes > 0 && err_sink.bytes == 0);
	} else {
		CHECK(!exit_now);
		CHECK(fargs.argc == 0 && fargs.argv == NULL);
		CHECK(err_sink.lines == 1);
	}
	/* Bounded output whatever the input. */
	CHECK(err_sink.bytes <= 1024 + 4 * size);

	fuse_opt_free_args(&fargs);
	fs_config_dispose(&cfg);
	CHECK(cfg.source == NULL && cfg.mountpoint == NULL);
	return 0;
}
