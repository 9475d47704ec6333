#!/usr/bin/env bash
# scripts/lint.sh - static analysis of src/ (libsmmap and smmapfs); what CI
# runs as step "lint" of scripts/test.sh.  Idempotent; installs what is
# missing; exits non-zero on any finding.
#
#   cppcheck    --enable=warning,style,performance,portability (+ --inconclusive),
#               with the posix and gnu library models; suppressions, each
#               explained, in tests/cppcheck.supp (and inline
#               "cppcheck-suppress" comments, if ever needed).
#   clang-tidy  the checks chosen (and the ones left out, with the reasons)
#               in .clang-tidy at the top; every warning is an error.  It
#               needs the compile commands meson writes: those of the
#               build-test directory that scripts/test.sh builds (same
#               options, so nothing is rebuilt), one entry per source file
#               of src/ (the sanitizer twins are left out).
#
# Environment: LINT_BUILD_DIR (default build-test) - the build directory
# whose compile_commands.json is used; it is configured with the options of
# scripts/test.sh if needed.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

ensure_packages "${BUILD_PACKAGES[@]}" cppcheck clang-tidy python3
B=${LINT_BUILD_DIR:-build-test}
ensure_build "$B" -Dwerror=true -Dsanitizers=true
cd "$TOP" || die "no $TOP"
jobs=$(nproc 2>/dev/null || echo 2)
failed=()

# --- cppcheck ---------------------------------------------------------------
say "cppcheck src/lib src/fs"
if ! cppcheck --quiet --error-exitcode=1 -j "$jobs" \
	--enable=warning,style,performance,portability --inconclusive \
	--std=c11 --platform=unix64 --library=posix --library=gnu \
	-D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -DSMMAP_BUILDING \
	-D__GNUC__ -D__linux__ \
	-I include -I src/lib -I src/fs \
	--inline-suppr --suppressions-list=tests/cppcheck.supp \
	--template='{file}:{line}: {severity} ({id}): {message}' \
	src/lib src/fs; then
	failed+=(cppcheck)
fi

# --- clang-tidy -------------------------------------------------------------
db="$TOP/$B/lint"
mkdir -p "$db"
python3 - "$TOP/$B/compile_commands.json" "$db/compile_commands.json" <<'PY' ||
import json, os, sys
src, dst = sys.argv[1], sys.argv[2]
seen, out = set(), []
for e in json.load(open(src)):
    path = os.path.normpath(os.path.join(e["directory"], e["file"]))
    rel = os.path.relpath(path, os.path.dirname(os.path.dirname(src)))
    if not rel.startswith(("src/lib/", "src/fs/")) or not rel.endswith(".c"):
        continue
    if "-fsanitize" in e.get("command", " ".join(e.get("arguments", []))):
        continue  # the -asan/-tsan twins: same code, other flags
    if path in seen:
        continue
    seen.add(path)
    out.append(e)
json.dump(out, open(dst, "w"), indent=1)

PY
	die "cannot read $TOP/$B/compile_commands.json"
files=$(python3 -c '
import json, os, sys
for e in json.load(open(sys.argv[1])):
    print(os.path.normpath(os.path.join(e["directory"], e["file"])))
' "$db/compile_commands.json")
[ -n "$files" ] || die "no src/ files in $B/compile_commands.json"
say "clang-tidy $(echo "$files" | wc -l) files (checks: .clang-tidy)"
# -Wno-unknown-warning-option: the commands are gcc's.  "N warnings
# generated" counts the diagnostics that the filters hide: dropped.
if ! printf '%s\n' "$files" | xargs -P "$jobs" -n 1 \
	clang-tidy -p "$db" --quiet --extra-arg=-Wno-unknown-warning-option \
	2> >(grep -v -E '^[0-9]+ warnings? (and [0-9]+ errors? )?generated\.$' >&2); then
	failed+=(clang-tidy)
fi

if [ ${#failed[@]} -gt 0 ]; then
	printf 'lint FAILED: %s\n' "${failed[*]}"
	exit 1
fi
echo "lint: cppcheck and clang-tidy clean"
