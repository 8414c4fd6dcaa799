#!/usr/bin/env bash
# mkimages.sh writes the rootfs tarballs that berth's tests and demo import,
# since nothing can be pulled from a registry on the machines berth is built on:
#
#   _out/images/busybox-rootfs.tar  /bin/busybox from Debian's busybox-static,
#                                   its applet links, /etc/passwd, /etc/group
#                                   (root, nobody), /tmp, /root and empty
#                                   /dev, /proc, /sys mount points.
#   _out/images/hello-rootfs.tar    a scratch rootfs holding only /hello, the
#                                   static Go program in hack/hello.
#
# Both tarballs are deterministic (sorted entries, mtime 0, uid/gid 0), so
# their digests change only when their inputs do. The script does nothing when
# the outputs are newer than a stamp of their inputs, and it is safe to run
# from several processes at once (it takes a lock).
#
# Usage: hack/mkimages.sh [OUTDIR]    (OUTDIR defaults to _out/images)
set -euo pipefail

# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
root=$(repo_root)
out=${1:-$root/_out/images}
mkdir -p "$out"

ensure_pkgs busybox-static tar coreutils util-linux

exec 9>"$out/.lock"
flock 9

# The stamp names every input: this script, its library, the busybox binary,
# the hello program's source and the Go toolchain that compiles it.
stamp=$(
	{
		cat "$root/hack/mkimages.sh" "$root/hack/lib.sh" /bin/busybox
		find "$root/hack/hello" -type f -name '*.go' | LC_ALL=C sort | xargs cat
		go version
	} | sha256sum | cut -d' ' -f1
)
if [[ -f $out/busybox-rootfs.tar && -f $out/hello-rootfs.tar && -f $out/.stamp &&
	$(cat "$out/.stamp") == "$stamp" ]]; then
	exit 0
fi

work=$(mktemp -d "$out/.work.XXXXXX")
trap 'rm -rf "$work"' EXIT

# deterministic_tar DIR FILE tars the contents of DIR into FILE so that the
# same tree always gives the same bytes. Top-level names are listed sorted
# (and without a leading ./) because --sort=name orders only what tar finds
# while recursing.
deterministic_tar() {
	local dir=$1 file=$2
	local names=()
	mapfile -t names < <(cd "$dir" && LC_ALL=C ls -A)
	LC_ALL=C tar --create --file="$file" --directory="$dir" \
		--format=gnu --sort=name --mtime=@0 \
		--owner=0 --group=0 --numeric-owner \
		-- "${names[@]}"
}

# busybox: the modes are set explicitly so that the umask of whoever runs
# this does not leak into the image.
bb=$work/busybox
install -d -m 0755 "$bb"/{bin,sbin,usr,usr/bin,usr/sbin,etc,dev,proc,sys,var,root}
install -d -m 1777 "$bb/tmp"
chmod 0700 "$bb/root"
install -m 0755 /bin/busybox "$bb/bin/busybox"
while read -r applet; do
	[[ $applet == bin/busybox ]] && continue
	install -d -m 0755 "$bb/$(dirname "$applet")"
	ln -s /bin/busybox "$bb/$applet"
done < <(/bin/busybox --list-full)
printf '%s\n' \
	'root:x:0:0:root:/root:/bin/sh' \
	'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >"$bb/etc/passwd"
printf '%s\n' \
	'root:x:0:' \
	'nogroup:x:65534:' \
	'nobody:x:65534:' >"$bb/etc/group"
chmod 0644 "$bb/etc/passwd" "$bb/etc/group"
deterministic_tar "$bb" "$work/busybox-rootfs.tar"

# hello: one static binary, reproducible (-trimpath, no VCS stamp).
hello=$work/hello
install -d -m 0755 "$hello"
(cd "$root" && CGO_ENABLED=0 GOOS=linux go build -trimpath -buildvcs=false \
	-ldflags='-s -w' -o "$hello/hello" ./hack/hello)
chmod 0755 "$hello/hello"
deterministic_tar "$hello" "$work/hello-rootfs.tar"

mv -f "$work/busybox-rootfs.tar" "$work/hello-rootfs.tar" "$out/"
echo "$stamp" >"$out/.stamp"
echo "wrote $out/busybox-rootfs.tar $out/hello-rootfs.tar" >&2
