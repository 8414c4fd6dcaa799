#!/usr/bin/env bash
# demo.sh is the README's first command after the build: the seed's
# lifecycle on local images (nothing can be pulled here). It uses its own data root, so it touches nothing else, and
# removes it at the end.
#
#   make an image from a busybox rootfs -> list -> inspect -> history
#   -> save -> remove -> load back -> list
#   -> run a container in the foreground -> run one detached -> its logs
#   -> stop it gracefully -> remove it
#   -> the seed's lifecycle on its example app: build (examples/seed)
#   -> push to a registry (berth's own) -> remove -> pull back
#   -> run with -p ...:3000 -> fetch its page -> stop -> remove -> disk usage
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ensure_pkgs curl python3
root=$(repo_root)
berth="$root/bin/berth"
images="$root/_out/images"
demo=$(mktemp -d /tmp/berth-demo.XXXXXX)
export BERTH_ROOT="$demo/root"
b() { "$berth" --runroot "$demo/run" "$@"; }
step() { printf '\n\033[1m$ berth %s\033[0m\n' "$*"; b "$@"; }
registry_pid=
cleanup() {
	# Everything of the demo's root, its network's bridge and rules too.
	"$berth" --runroot "$demo/run" system reset --force >/dev/null 2>&1 || true
	[ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null && wait "$registry_pid" 2>/dev/null || true
	pkill -f -- "--runroot $demo/run " 2>/dev/null || true
	umount -R "$demo/run" 2>/dev/null || true # the run root's tmpfs
	rm -rf "$demo"
}
trap cleanup EXIT

step version
step import --change 'CMD ["sh"]' --change 'ENV GREETING=hello' "$images/busybox-rootfs.tar" busybox:latest
step tag busybox:latest hello:v1
step images
step image inspect --format '{{.Id}} {{.RepoTags}} {{.Config.Cmd}} {{.Config.Env}} {{.Os}}/{{.Architecture}}' hello:v1
step history hello:v1
step save -o "$demo/hello.tar" hello:v1
ls -l "$demo/hello.tar"
step rmi hello:v1 busybox:latest
step images
step load -i "$demo/hello.tar"
step images --digests
step run --rm hello:v1 echo 'hello from a berth container'
step run -d --name web hello:v1 sh -c 'trap "echo stopping gracefully; exit 0" TERM; echo "$GREETING, serving"; while :; do sleep 0.2; done'
step ps
sleep 0.5
step logs web
step stop web
step logs --tail 1 web
step ps -a
step rm web
step ps -a

# The seed's lifecycle on its example app (examples/seed): build it from
# its Dockerfile on a local Node.js base image (hack/mknodeimage.sh: nothing
# can be pulled here), push it to a registry (berth's own, on loopback, so
# nothing else needs installing), remove it, pull it back, run it with its
# port published, fetch its page, stop it, remove it.
printf '\n\033[1m$ hack/mknodeimage.sh\033[0m\n'
BERTH="$berth" "$root/hack/mknodeimage.sh" --runroot "$demo/run"
printf '\n\033[1m$ cd examples/seed && berth build -t myapp:v1 .\033[0m\n'
(cd "$root/examples/seed" && b build -t myapp:v1 .)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
reg=127.0.0.1:$port
printf '\n\033[1m$ berth registry serve --addr %s &\033[0m\n' "$reg"
"$berth" --runroot "$demo/run" registry serve --addr "$reg" --root "$demo/registry" &
registry_pid=$!
for _ in $(seq 50); do (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
step tag myapp:v1 "$reg/myapp:v1"
step push "$reg/myapp:v1"
step rmi "$reg/myapp:v1" myapp:v1
step images
step pull "$reg/myapp:v1"
app_port=$(free_port)
step run -d --name app -p "127.0.0.1:$app_port:3000" "$reg/myapp:v1"
step port app
for _ in $(seq 50); do curl -fsS "http://127.0.0.1:$app_port/" >/dev/null 2>&1 && break; sleep 0.1; done
printf '\n\033[1m$ curl http://127.0.0.1:%s/\033[0m\n' "$app_port"
curl -fsS "http://127.0.0.1:$app_port/"
step stop app
step rm app
step system df
printf '\nThe demo ran in its own data root (%s), now removed.\n' "$BERTH_ROOT"
