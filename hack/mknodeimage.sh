#!/usr/bin/env bash
# mknodeimage.sh makes the local base image the seed's example names,
# node:20-alpine, since nothing can be pulled here. It is not Alpine: it is
# busybox (the test image's rootfs from hack/mkimages.sh) with this
# machine's Node.js — the node binary, the shared libraries ldd lists for
# it, and npm with a global npmrc that keeps it from calling home (no
# audit, fund or update check), so `npm install --production` of a
# package.json without dependencies works offline.
#
# Usage: hack/mknodeimage.sh [BERTH-GLOBAL-FLAGS...]
#   e.g. hack/mknodeimage.sh --root /tmp/r --runroot /tmp/rr
# BERTH names the berth binary (default bin/berth of this checkout); the
# image is tagged $NODE_IMAGE (default node:20-alpine).
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
root=$(repo_root)
berth=${BERTH:-$root/bin/berth}
tag=${NODE_IMAGE:-node:20-alpine}

if ! command -v node >/dev/null; then
	ensure_pkgs nodejs
fi
"$root/hack/mkimages.sh"

node=$(readlink -f "$(command -v node)")
work=$(mktemp -d /tmp/berth-nodeimage.XXXXXX)
trap 'rm -rf "$work"' EXIT
fs=$work/rootfs
mkdir -p "$fs"
tar -xf "$root/_out/images/busybox-rootfs.tar" -C "$fs"

# node and its shared libraries, at the paths the loader looks for them.
install -D -m 0755 "$node" "$fs/usr/bin/node"
ldd "$node" | awk '/=> \//{print $3} /^[ \t]*\/.*ld-linux/{print $1}' | while read -r lib; do
	[ -e "$lib" ] || continue
	install -D -m 0755 "$(readlink -f "$lib")" "$fs$lib"
done

# npm: wherever this machine's npm lives (NodeSource's under
# /usr/lib/node_modules, Debian's under /usr/share/nodejs).
if command -v npm >/dev/null; then
	cli=$(readlink -f "$(command -v npm)")
	npmdir=$(dirname "$(dirname "$cli")")
	mkdir -p "$fs$npmdir"
	cp -a "$npmdir/." "$fs$npmdir/"
	if [[ $npmdir == /usr/share/nodejs/* ]]; then
		cp -a /usr/share/nodejs "$fs/usr/share/"
	fi
	ln -sf "$cli" "$fs/usr/bin/npm"
	[ -f "$npmdir/bin/npx-cli.js" ] && ln -sf "$npmdir/bin/npx-cli.js" "$fs/usr/bin/npx"
	mkdir -p "$fs/usr/etc"
	printf '%s\n' 'audit=false' 'fund=false' 'update-notifier=false' >"$fs/usr/etc/npmrc"
fi

tar --create --file="$work/node.tar" --directory="$fs" --sort=name --owner=0 --group=0 --numeric-owner .
version=$("$node" --version)
"$berth" "$@" import \
	--change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
	--change "ENV NODE_VERSION=${version#v}" \
	--change 'CMD ["node"]' \
	"$work/node.tar" "$tag" >/dev/null
echo "imported $tag (node $version, busybox)" >&2
