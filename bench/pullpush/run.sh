#!/usr/bin/env bash
# run.sh installs the peers (skopeo, podman, docker-registry), builds berth
# into _out/bench/berth and runs the pull/push comparison. Extra arguments go
# to the program (-runs N, -rows REGEXP, -v).
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../hack/lib.sh"
ensure_pkgs skopeo podman runc docker-registry
cd "$(repo_root)"
mkdir -p _out/bench
CGO_ENABLED=0 go build -o _out/bench/ ./cmd/berth ./cmd/berth-imagetools
go run ./bench/pullpush -berth _out/bench/berth "$@"
