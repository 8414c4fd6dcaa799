#!/usr/bin/env bash
# demo.sh is the README's first command after the build: the seed's
# lifecycle as far as berth goes today, on a local image (nothing can be
# pulled here). It uses its own data root, so it touches nothing else, and
# removes it at the end.
#
#   make an image from a busybox rootfs -> list -> inspect -> history
#   -> save -> remove -> load back -> list
#   -> run a container in the foreground -> run one detached -> its logs
#   -> stop it gracefully -> remove it -> disk usage
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
root=$(repo_root)
berth="$root/bin/berth"
images="$root/_out/images"
demo=$(mktemp -d /tmp/berth-demo.XXXXXX)
export BERTH_ROOT="$demo/root"
b() { "$berth" --runroot "$demo/run" "$@"; }
step() { printf '\n\033[1m$ berth %s\033[0m\n' "$*"; b "$@"; }
cleanup() {
	"$berth" --runroot "$demo/run" rm -f web >/dev/null 2>&1 || true
	pkill -f -- "--runroot $demo/run " 2>/dev/null || true
	rm -rf "$demo"
}
trap cleanup EXIT

step version
step import --change 'CMD ["sh"]' --change 'ENV GREETING=hello' "$images/busybox-rootfs.tar" busybox:latest
step tag busybox:latest myapp:v1
step images
step image inspect --format '{{.Id}} {{.RepoTags}} {{.Config.Cmd}} {{.Config.Env}} {{.Os}}/{{.Architecture}}' myapp:v1
step history myapp:v1
step save -o "$demo/myapp.tar" myapp:v1
ls -l "$demo/myapp.tar"
step rmi myapp:v1 busybox:latest
step images
step load -i "$demo/myapp.tar"
step images --digests
step run --rm myapp:v1 echo 'hello from a berth container'
step run -d --name web myapp:v1 sh -c 'trap "echo stopping gracefully; exit 0" TERM; echo "$GREETING, serving"; while :; do sleep 0.2; done'
step ps
sleep 0.5
step logs web
step stop web
step logs --tail 1 web
step ps -a
step rm web
step ps -a
step system df
printf '\nThe demo ran in its own data root (%s), now removed.\n' "$BERTH_ROOT"
