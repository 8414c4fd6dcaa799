#!/usr/bin/env bash
# deps.sh installs what berth's test suite needs on a fresh Debian machine:
# busybox-static for the test images, and the peers the interop and
# drop-in tests run against (podman, skopeo, crun, runc). Quick when all is
# present.
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ensure_pkgs busybox-static tar podman skopeo crun runc uidmap conmon tini docker-registry buildah
