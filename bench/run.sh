#!/usr/bin/env bash
# run.sh prints berth's benchmark table: it installs the peers it measures
# against from Debian's apt (if missing), builds berth, generates the inputs
# under _out/bench (once; they are reused) and runs bench/cmd/berthbench.
# Arguments are passed to berthbench, for example:
#
#   bench/run.sh                 # every row, 10 runs per side
#   bench/run.sh -runs 20 -rows load -v
#
# See bench/README.md for what each row measures.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/lib.sh
source "$here/../hack/lib.sh"
root=$(repo_root)
cd "$root"

ensure_pkgs podman crun runc buildah skopeo docker-registry tar

mkdir -p _out/bench
# berth is built here rather than into bin/, so that a stale bin/berth is
# never measured. If it does not build, the table still prints the peers'
# side and says why berth's is missing.
berth=$root/_out/bench/berth
rm -f "$berth"
# Built as make builds it: static, without cgo.
rm -f "$root/_out/bench/berth-imagetools"
if ! CGO_ENABLED=0 go build -o _out/bench/ ./cmd/berth ./cmd/berth-imagetools; then
	echo "run.sh: berth did not build; its side of every row will be n/a" >&2
fi
go build -o _out/bench/berthbench ./bench/cmd/berthbench
exec _out/bench/berthbench -berth "$berth" -data "$root/_out/bench" "$@"
