# shellcheck shell=bash
# Helpers shared by berth's scripts under hack/ and bench/. Source it; it
# defines functions only and changes no shell options.

# ensure_pkgs installs the named Debian packages that are not installed yet.
# It is quick when everything is present: dpkg is asked first, and apt-get
# (and apt-get update, once, only if the install fails without it) runs only
# for what is missing.
ensure_pkgs() {
	local missing=() p
	for p in "$@"; do
		if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
			missing+=("$p")
		fi
	done
	if ((${#missing[@]} == 0)); then
		return 0
	fi
	echo "installing ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-get install -y --no-install-recommends "${missing[@]}" >&2; then
		apt-get update >&2
		apt-get install -y --no-install-recommends "${missing[@]}" >&2
	fi
}

# repo_root prints the root of the berth checkout that holds this file.
repo_root() {
	(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
}
