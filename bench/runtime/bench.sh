#!/usr/bin/env bash
# Side-by-side start-up cost of berth-runtime, crun and runc, from the same
# prepared busybox bundle (rootfs from /bin/busybox and its applet links).
#
#   bench/runtime/bench.sh [RUNS]        (default 30 runs each; needs root)
#
# Prints the median of `run` of /bin/true and of create+start+delete of a
# /bin/true container (the container's exit is included: delete waits for
# nothing, the process is gone), for each runtime, and berth's ratio to each.
set -euo pipefail
RUNS=${1:-30}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
WORK=${BENCH_WORK:-/tmp/berth-bench-runtime}
BERTH=${BERTH_RUNTIME:-$WORK/berth-runtime}

[ "$(id -u)" = 0 ] || { echo "needs root" >&2; exit 2; }
command -v hyperfine >/dev/null || { echo "needs hyperfine" >&2; exit 2; }
mkdir -p "$WORK"
if [ -z "${BERTH_RUNTIME:-}" ]; then
  (cd "$REPO" && go build -o "$BERTH" ./cmd/berth-runtime)
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

declare -A RUN CSD
for rt in "$BERTH" crun runc; do
  name=$(basename "$rt")
  "$rt" delete -f bench-$name >/dev/null 2>&1 || true
  hyperfine -N -w 3 -r "$RUNS" --export-json "$WORK/run-$name.json" \
    "$rt run --bundle $B bench-$name" >/dev/null
  hyperfine -w 3 -r "$RUNS" --export-json "$WORK/csd-$name.json" \
    "$rt create --bundle $B bench-$name && $rt start bench-$name && $rt delete -f bench-$name" >/dev/null
  RUN[$name]=$(python3 -c "import json;print(json.load(open('$WORK/run-$name.json'))['results'][0]['median']*1000)")
  CSD[$name]=$(python3 -c "import json;print(json.load(open('$WORK/csd-$name.json'))['results'][0]['median']*1000)")
done
b=$(basename "$BERTH")
printf '%-26s %14s %14s %14s %12s %12s\n' "median of $RUNS (ms)" berth-runtime crun runc "berth/crun" "berth/runc"
for row in RUN CSD; do
  declare -n M=$row
  label="run /bin/true"; [ $row = CSD ] && label="create+start+delete"
  printf '%-26s %14.1f %14.1f %14.1f %11.2fx %11.2fx\n' "$label" "${M[$b]}" "${M[crun]}" "${M[runc]}" \
    "$(python3 -c "print(${M[$b]}/${M[crun]})")" "$(python3 -c "print(${M[$b]}/${M[runc]})")"
done
