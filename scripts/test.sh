#!/usr/bin/env bash
# scripts/test.sh - run every test (what CI runs).  Idempotent; installs
# what is missing.  Steps (each reported, all run even if one fails):
#   build      warning-free build (-Werror) with sanitizer twins
#   plain      meson test: suites unit, mount, faults
#   asan       the same suites against the AddressSanitizer+UBSan twins
#   tsan       the same suites against the ThreadSanitizer twins
#   valgrind   memcheck over the unit suite
#   lint       cppcheck and clang-tidy over src/ (scripts/lint.sh)
#   fuzz       each libFuzzer target for $FUZZ_SECONDS (default 60) s
# Options: --quick (build + plain only), --no-fuzz, --no-lint.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

quick=0 fuzz=1 lint=1
for a in "$@"; do
	case $a in
	--quick) quick=1 ;;
	--no-fuzz) fuzz=0 ;;
	--no-lint) lint=0 ;;
	*) die "unknown argument $a (see the comment at the top of $0)" ;;
	esac
done

ensure_packages "${BUILD_PACKAGES[@]}" "${TEST_PACKAGES[@]}"
ensure_build build-test -Dwerror=true -Dsanitizers=true

B="$TOP/build-test"
failed=()
results=()

step() {
	local name=$1; shift
	local t0=$SECONDS
	say "step $name: $*"
	if "$@"; then
		results+=("$(printf '%-9s ok     %4ds' "$name" $((SECONDS - t0)))")
	else
		results+=("$(printf '%-9s FAILED %4ds' "$name" $((SECONDS - t0)))")
		failed+=("$name")
	fi
}

suites=(--suite unit --suite mount --suite faults)
step plain meson test -C "$B" --print-errorlogs "${suites[@]}"
if [ $quick -eq 0 ]; then
	step asan meson test -C "$B" --setup=asan --print-errorlogs "${suites[@]}"
	step tsan meson test -C "$B" --setup=tsan --print-errorlogs "${suites[@]}"
	step valgrind meson test -C "$B" --setup=valgrind --print-errorlogs --suite unit
	if [ $lint -eq 1 ] && [ -x "$TOP/scripts/lint.sh" ]; then
		step lint "$TOP/scripts/lint.sh"
	fi
	if [ $fuzz -eq 1 ] && [ -x "$TOP/scripts/fuzz.sh" ]; then
		step fuzz "$TOP/scripts/fuzz.sh" "${FUZZ_SECONDS:-60}"
	fi
fi

printf '\n%s\n' "${results[@]}"
if [ ${#failed[@]} -gt 0 ]; then
	printf 'FAILED: %s\n' "${failed[*]}"
	exit 1
fi
echo "all tests passed"
