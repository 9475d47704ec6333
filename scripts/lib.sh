# scripts/lib.sh - shared by the scripts: install what is missing, build.
# Source it; it defines functions only.

# Where the project lives (the scripts' parent directory).
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# ensure_packages PKG...: apt-get install the Debian packages not installed
# yet; runs `apt-get update` first when a package cannot be found.
ensure_packages() {
	local missing=() p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
			grep -q 'install ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	[ "$(id -u)" -eq 0 ] ||
		die "missing packages (${missing[*]}); run as root or install them"
	say "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-get install -y --no-install-recommends "${missing[@]}" >/tmp/smmapfs-apt.log 2>&1; then
		apt-get update >>/tmp/smmapfs-apt.log 2>&1 ||
			die "apt-get update failed (see /tmp/smmapfs-apt.log)"
		apt-get install -y --no-install-recommends "${missing[@]}" >>/tmp/smmapfs-apt.log 2>&1 ||
			die "apt-get install ${missing[*]} failed (see /tmp/smmapfs-apt.log)"
	fi
}

# Packages to build the library and the filesystem.
BUILD_PACKAGES=(meson ninja-build pkg-config gcc libc6-dev libfuse3-dev fuse3)
# ... and to run every test.
TEST_PACKAGES=(libcmocka-dev python3 fio attr valgrind clang libclang-rt-14-dev
	cppcheck clang-tidy util-linux passwd)

# ensure_build DIR [MESON_OPTION...]: configure DIR once (or again when
# the options differ) and build it.
ensure_build() {
	local dir=$1; shift
	local stamp="$TOP/$dir/.smmapfs-options"
	if [ ! -f "$TOP/$dir/build.ninja" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$*" ]; then
		rm -rf "${TOP:?}/$dir"
		say "configuring $dir $*"
		meson setup "$TOP/$dir" "$TOP" "$@" >/dev/null ||
			die "meson setup $dir failed"
		printf '%s' "$*" >"$stamp"
	fi
	say "building $dir"
	ninja -C "$TOP/$dir" >/tmp/smmapfs-ninja.log 2>&1 || {
		tail -40 /tmp/smmapfs-ninja.log >&2
		die "build of $dir failed"
	}
}
