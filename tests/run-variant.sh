#!/bin/sh
# Test wrapper for the `asan` and `tsan` test setups (see tests/meson.build).
# Usage: run-variant.sh VARIANT PROGRAM [ARGS...]
# Runs PROGRAM-VARIANT, the sanitizer twin of a test program, when it exists;
# otherwise (a script) runs PROGRAM and points SMMAPFS_BIN at the twin of the
# filesystem daemon so that mount tests exercise the sanitized daemon.
set -eu
variant=$1
shift
prog=$1
shift
if [ -n "${SMMAPFS_BIN:-}" ] && [ -x "${SMMAPFS_BIN}-${variant}" ]; then
	SMMAPFS_BIN="${SMMAPFS_BIN}-${variant}"
	export SMMAPFS_BIN
fi
SMMAP_TEST_VARIANT=$variant
export SMMAP_TEST_VARIANT
if [ -x "${prog}-${variant}" ]; then
	exec "${prog}-${variant}" "$@"
fi
exec "$prog" "$@"
