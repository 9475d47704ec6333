#!/usr/bin/env bash
# scripts/fuzz.sh [SECONDS] - run every libFuzzer target (tests/fuzz) for
# SECONDS each (default 60), one after the other.  What CI runs as step
# "fuzz" of scripts/test.sh.  Idempotent; installs what is missing.
#
#  - builds build-fuzz: CC=clang, -Dfuzz=true -Dsanitizers=false
#    -Db_lundef=false (targets and library with ASan, LeakSanitizer, UBSan
#    and libFuzzer's coverage instrumentation);
#  - each target runs over its working corpus build-fuzz/tests/fuzz/
#    corpus-TARGET, into which the seeds of tests/fuzz/corpus/TARGET are
#    copied first (the working corpus keeps what earlier runs found; it is
#    not in git), with crash/leak/timeout reproducers written to
#    build-fuzz/tests/fuzz/artifacts-TARGET/ and the log to
#    build-fuzz/tests/fuzz/TARGET.log;
#  - fails when a target crashes, leaks, times out, runs out of memory or
#    exits non-zero, printing the reproducer and how to replay it;
#  - prints a summary: executions, exec/s, coverage, corpus, crashes.
#
# Environment: FUZZ_TARGETS="fuzz_cursor ..." runs only those targets.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

secs=${1:-60}
[[ $secs =~ ^[1-9][0-9]*$ ]] || die "usage: $0 [SECONDS]  (seconds per target)"

ensure_packages "${BUILD_PACKAGES[@]}" clang libclang-rt-14-dev
export CC=clang
ensure_build build-fuzz -Dfuzz=true -Dsanitizers=false -Db_lundef=false

F="$TOP/build-fuzz/tests/fuzz"
targets=()
if [ -n "${FUZZ_TARGETS:-}" ]; then
	read -r -a targets <<<"$FUZZ_TARGETS"
else
	for exe in "$F"/fuzz_*; do
		[ -f "$exe" ] && [ -x "$exe" ] && targets+=("$(basename "$exe")")
	done
fi
[ ${#targets[@]} -gt 0 ] || die "no fuzz targets in $F"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# fz_stat NAME LOG: the value of libFuzzer's final "stat::NAME: V" line.
fz_stat() { sed -n "s/^stat::$1: *//p" "$2" | tail -1; }
# done_field NAME LOG: a field (cov, ft, corp) of the last status line.
done_field() {
	grep -E '^#[0-9]+' "$2" | tail -1 | sed -n "s/.* $1: \([^ ]*\).*/\1/p"
}

failed=()
summary=()
for t in "${targets[@]}"; do
	exe="$F/$t"
	[ -x "$exe" ] || die "no such fuzz target: $exe"
	corpus="$F/corpus-$t"
	art="$F/artifacts-$t"
	log="$F/$t.log"
	mkdir -p "$corpus" "$art"
	rm -f "$art"/*
	if [ -d "$TOP/tests/fuzz/corpus/$t" ]; then
		cp "$TOP/tests/fuzz/corpus/$t"/* "$corpus"/ 2>/dev/null
	fi
	say "fuzzing $t for ${secs}s (corpus $(find "$corpus" -type f | wc -l) inputs)"
	timeout -k 10 $((secs * 2 + 120)) "$exe" \
		-max_total_time="$secs" -timeout=25 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$art/" "$corpus" \
		>"$log" 2>&1
	rc=$?
	found=$(find "$art" -type f \( -name 'crash-*' -o -name 'leak-*' \
		-o -name 'timeout-*' -o -name 'oom-*' \) | sort)
	nfound=$(printf '%s' "$found" | grep -c . || true)
	runs=$(fz_stat number_of_executed_units "$log")
	eps=$(fz_stat average_exec_per_sec "$log")
	rss=$(fz_stat peak_rss_mb "$log")
	summary+=("$(printf '%-13s %10s runs %7s exec/s  cov %5s  ft %6s  corpus %6s  rss %5s MB  crashes %s  rc %s' \
		"$t" "${runs:-?}" "${eps:-?}" "$(done_field cov "$log")" \
		"$(done_field ft "$log")" "$(done_field corp "$log")" \
		"${rss:-?}" "$nfound" "$rc")")
	if [ "$rc" -ne 0 ] || [ "$nfound" -gt 0 ]; then
		failed+=("$t")
		printf '\n== %s FAILED (exit %s); end of %s:\n' "$t" "$rc" "$log" >&2
		grep -v '^#[0-9]' "$log" | tail -60 >&2
		for f in $found; do
			printf '== reproducer: %s\n   replay: %s %s\n' "$f" "$exe" "$f" >&2
		done
	fi
done

printf '\nfuzzing, %ss per target:\n' "$secs"
printf '  %s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
	printf 'FAILED: %s\n' "${failed[*]}"
	exit 1
fi
echo "no crashes, leaks or timeouts"
