#!/usr/bin/env bash
# scripts/setup.sh - install what is missing and build (idempotent).
#   scripts/setup.sh          packages to build + the build in ./build
#   scripts/setup.sh --tests  also every package the tests need
set -euo pipefail
. "$(dirname "$0")/lib.sh"

ensure_packages "${BUILD_PACKAGES[@]}"
if [ "${1:-}" = "--tests" ]; then
	ensure_packages "${TEST_PACKAGES[@]}"
fi
ensure_build build
say "built: $TOP/build/src/fs/smmapfs, $TOP/build/src/lib/libsmmap.so"
