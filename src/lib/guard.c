/*
 * guard.c - the SIGBUS guard.
 *
 * Reading a mapping past the end of a file that was truncated underneath
 * raises SIGBUS.  The library's own copies (buffer, cursor_read) arm a
 * thread-local guard holding the source range and a sigjmp_buf; the handler
 * jumps back when the fault address lies in the armed range of the faulting
 * thread and otherwise hands the signal to whoever had it before.
 *
 * Pitfalls this code is shaped by (see docs/design.md):
 *  - The guard pointer is volatile and fenced: at -O2 a plain thread-local
 *    store before memcpy is a dead store the compiler may delete, and the
 *    handler then sees no guard.
 *  - SA_NODEFER, so sigsetjmp(env, 0) needs no sigprocmask per copy: the
 *    signal is not blocked while the handler runs, so nothing is left
 *    blocked after the jump (except under ThreadSanitizer, see below).
 *  - No SA_ONSTACK: without an alternate stack it breaks valgrind.
 *  - Installation checks the current disposition instead of a once-flag:
 *    test harnesses (cmocka) reset handlers between tests.
 */
#include "guard.h"

#include "smmap.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

/*
 * ThreadSanitizer runs handlers with the signal blocked whatever
 * SA_NODEFER says, so under it the jump must restore the signal mask (one
 * sigprocmask per guarded copy).  Production builds avoid that syscall.
 */
#if defined(__SANITIZE_THREAD__)
#define GUARD_SAVEMASK 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GUARD_SAVEMASK 1
#endif
#endif
#ifndef GUARD_SAVEMASK
#define GUARD_SAVEMASK 0
#endif

struct guard {
	sigjmp_buf env;
	const char *lo;
	const char *hi;
};

/* initial-exec: reading it in the handler must not allocate. */
static _Thread_local struct guard *volatile tl_guard
	__attribute__((tls_model("initial-exec")));

static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sigaction prev_action; /* written under install_lock */

static void chain(int sig, siginfo_t *si, void *uc)
{
	const struct sigaction *p = &prev_action;

	if (p->sa_flags & SA_SIGINFO) {
		p->sa_sigaction(sig, si, uc);
		return;
	}
	if (p->sa_handler == SIG_IGN || p->sa_handler == SIG_DFL) {
		/*
		 * Returning re-executes the faulting access; with the default
		 * action restored that terminates the process as if we had
		 * never been installed.
		 */
		signal(sig, SIG_DFL);
		return;
	}
	p->sa_handler(sig);
}

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	struct guard *g = tl_guard;
	const char *a = si ? (const char *)si->si_addr : NULL;

	if (g && a >= g->lo && a < g->hi)
		siglongjmp(g->env, 1);
	chain(sig, si, uc);
}

int smmap_sigbus_install(void)
{
	struct sigaction cur, sa;
	int err = 0;

	pthread_mutex_lock(&install_lock);
	if (sigaction(SIGBUS, NULL, &cur) != 0) {
		err = -errno;
	} else if (!((cur.sa_flags & SA_SIGINFO) &&
		     cur.sa_sigaction == on_sigbus)) {
		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = on_sigbus;
		sa.sa_flags = SA_SIGINFO | SA_NODEFER;
		sigemptyset(&sa.sa_mask);
		prev_action = cur;
		if (sigaction(SIGBUS, &sa, NULL) != 0)
			err = -errno;
	}
	pthread_mutex_unlock(&install_lock);
	return err;
}

__attribute__((noinline)) int smmap__guarded_copy(void *dst, const void *src,
						  size_t n)
{
	struct guard g;

	g.lo = src;
	g.hi = (const char *)src + n;
	if (sigsetjmp(g.env, GUARD_SAVEMASK)) {
		tl_guard = NULL;
		atomic_signal_fence(memory_order_seq_cst);
		return -EIO;
	}
	tl_guard = &g;
	atomic_signal_fence(memory_order_seq_cst);
	memcpy(dst, src, n);
	atomic_signal_fence(memory_order_seq_cst);
	tl_guard = NULL;
	return 0;
}
