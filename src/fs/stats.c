/*
 * stats.c - the statistics (user.smmapfs.stats on the root, SIGUSR1 to the
 * log) and logging.
 */
#include "fs.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

static bool use_syslog;
static pthread_t sig_thread;
static bool sig_started;
static atomic_bool sig_stop;

void fs_log_use_syslog(bool on)
{
	use_syslog = on;
	if (on)
		openlog("smmapfs", LOG_PID, LOG_DAEMON);
}

void fs_log(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (use_syslog) {
		vsyslog(LOG_NOTICE, fmt, ap);
	} else {
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
	}
	va_end(ap);
}

static uint64_t ld(atomic_uint_fast64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

size_t fs_stats_format(struct fs *fs, char *buf, size_t size)
{
	struct smmap_stats s;
	struct fs_counters *c = &fs->ctr;
	int len;

	smmap_stats_get(&s, fs->man);
	len = snprintf(buf, size,
		"mapped_bytes=%" PRIu64 "\n"
		"max_mapped=%" PRIu64 "\n"
		"peak_mapped_bytes=%" PRIu64 "\n"
		"mappings=%" PRIu64 "\n"
		"max_handles=%" PRIu64 "\n"
		"peak_mappings=%" PRIu64 "\n"
		"fds=%" PRIu64 "\n"
		"max_fds=%" PRIu64 "\n"
		"peak_fds=%" PRIu64 "\n"
		"window_size=%" PRIu64 "\n"
		"open_files=%" PRIu64 "\n"
		"client_opens=%" PRIu64 "\n"
		"nodes=%" PRIu64 "\n"
		"hits=%" PRIu64 "\n"
		"misses=%" PRIu64 "\n"
		"evictions=%" PRIu64 "\n"
		"retired=%" PRIu64 "\n"
		"limit_refusals=%" PRIu64 "\n"
		"fd_waits=%" PRIu64 "\n"
		"reads=%" PRIu64 "\n"
		"read_bytes=%" PRIu64 "\n"
		"fallback_reads=%" PRIu64 "\n"
		"fallback_bytes=%" PRIu64 "\n"
		"reply_faults=%" PRIu64 "\n"
		"stale_reads=%" PRIu64 "\n"
		"lookups=%" PRIu64 "\n"
		"opens=%" PRIu64 "\n"
		"changes=%" PRIu64 "\n"
		"invalidations=%" PRIu64 "\n"
		"errors=%" PRIu64 "\n",
		s.mapped_bytes, s.max_mapped, s.peak_mapped_bytes,
		s.mappings, s.max_handles, s.peak_mappings,
		s.fds, s.max_fds, s.peak_fds, s.window_size, s.open_files,
		ld(&c->client_opens), ld(&c->nodes), s.hits, s.misses, s.evictions,
		s.retired, s.limit_refusals, s.fd_waits, ld(&c->reads),
		ld(&c->read_bytes), ld(&c->fallback_reads),
		ld(&c->fallback_bytes), ld(&c->reply_faults),
		ld(&c->stale_reads), ld(&c->lookups),
		ld(&c->opens), ld(&c->changes), ld(&c->invalidations),
		ld(&c->errors));
	if (len < 0)
		return 0;
	return (size_t)len < size ? (size_t)len : size - 1;
}

/* SIGUSR1 is blocked in every thread; this one waits for it. */
static void *sig_main(void *arg)
{
	struct fs *fs = arg;
	sigset_t set;
	char buf[4096];
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	for (;;) {
		if (sigwait(&set, &sig) != 0 || atomic_load(&sig_stop))
			break;
		size_t len = fs_stats_format(fs, buf, sizeof(buf));

		/* One log line: key=value pairs separated by spaces. */
		for (size_t i = 0; i + 1 < len; i++)
			if (buf[i] == '\n')
				buf[i] = ' ';
		if (len)
			buf[len - 1] = '\0';
		fs_log("smmapfs: stats: %s", buf);
	}
	return NULL;
}

int fs_stats_signal_start(struct fs *fs)
{
	sigset_t set;
	int err;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	err = pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (err)
		return -err;
	err = pthread_create(&sig_thread, NULL, sig_main, fs);
	if (err)
		return -err;
	sig_started = true;
	return 0;
}

void fs_stats_signal_stop(struct fs *fs)
{
	(void)fs;
	if (!sig_started)
		return;
	atomic_store(&sig_stop, true);
	pthread_kill(sig_thread, SIGUSR1);
	pthread_join(sig_thread, NULL);
	sig_started = false;
}
