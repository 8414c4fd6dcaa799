#!/usr/bin/env bash
# Side-by-side start-up cost of berth-runtime, crun and runc, from the same
# prepared busybox bundle (rootfs from /bin/busybox and its applet links).
#
#   bench/runtime/bench.sh [RUNS]        (default 30 runs each; needs root)
#
# Prints the median of `run` of /bin/true and of create+start+delete of a
# /bin/true container, for each runtime, and berth's ratio to each. Runs
# are interleaved across runtimes (bench/runtime/startbench), so a noisy
# machine slows every side alike; compare ratios, not absolute figures.
set -euo pipefail
RUNS=${1:-30}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
WORK=${BENCH_WORK:-/tmp/berth-bench-runtime}
BERTH=${BERTH_RUNTIME:-$WORK/berth-runtime}

[ "$(id -u)" = 0 ] || { echo "needs root" >&2; exit 2; }
mkdir -p "$WORK"
if [ -z "${BERTH_RUNTIME:-}" ]; then
  (cd "$REPO" && CGO_ENABLED=0 go build -o "$BERTH" ./cmd/berth-runtime)
fi

# crun refuses a hybrid host while hugetlb sits on the cgroup2 mount.
if [ -d /sys/fs/cgroup/unified ] && ! mountpoint -q /sys/fs/cgroup/hugetlb 2>/dev/null; then
  mkdir -p /sys/fs/cgroup/hugetlb
  mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb
fi

B=$WORK/bundle
if [ ! -x "$B/rootfs/bin/busybox" ]; then
  rm -rf "$B"; mkdir -p "$B/rootfs/bin" "$B/rootfs/proc" "$B/rootfs/sys" "$B/rootfs/dev" "$B/rootfs/tmp"
  cp /bin/busybox "$B/rootfs/bin/busybox"
  for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$B/rootfs/bin/$a"; done
fi
# One config for all three: runc's default spec, running /bin/true.
rm -f "$B/config.json"
(cd "$B" && runc spec)
python3 - "$B/config.json" <<'PY'
import json, sys
p = sys.argv[1]; c = json.load(open(p))
c["process"]["args"] = ["/bin/true"]; c["process"]["terminal"] = False
json.dump(c, open(p, "w"), indent=1)
PY

# Interleaved runs (berth, crun, runc, berth, ...): see startbench.
(cd "$REPO" && go build -o "$WORK/startbench" ./bench/runtime/startbench)
"$WORK/startbench" -bundle "$B" -runs "$RUNS" berth-runtime="$BERTH" crun=crun runc=runc
