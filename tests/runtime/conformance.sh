#!/usr/bin/env bash
# OCI runtime-tools validation (v0.9.0) against berth-runtime, runc and crun,
# printed side by side, one line per test file.
#
#   tests/runtime/conformance.sh [TEST ...]     (root; default: all 58 files)
#
# Builds bin/berth-runtime, then runs ../shared/conformance/runtime-tools/
# run.sh (which fetches and builds the suite once) for each runtime. A file
# that passes on runc or crun but not on berth-runtime is listed at the end
# as a regression; the exit status is 1 if there is any.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
RUNSH=${RUNSH:-$REPO/../shared/conformance/runtime-tools/run.sh}
CONF_WORK=${CONF_WORK:-/tmp/conf/runtime-tools}
export CONF_WORK TEST_TIMEOUT=${TEST_TIMEOUT:-60}

[ "$(id -u)" = 0 ] || { echo "needs root" >&2; exit 2; }
(cd "$REPO" && CGO_ENABLED=0 go build -o bin/berth-runtime ./cmd/berth-runtime)
# crun refuses a hybrid host while hugetlb sits on the cgroup2 mount.
if [ -d /sys/fs/cgroup/unified ] && ! mountpoint -q /sys/fs/cgroup/hugetlb 2>/dev/null; then
  mkdir -p /sys/fs/cgroup/hugetlb && mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb
fi

dirs=()
for rt in "$REPO/bin/berth-runtime" runc crun; do
  if ! command -v "$rt" >/dev/null; then echo "skip $rt: not installed" >&2; continue; fi
  before=$(ls -1 "$CONF_WORK/results" 2>/dev/null | sort)
  "$RUNSH" "$rt" "$@" >/dev/null
  new=$(comm -13 <(echo "$before") <(ls -1 "$CONF_WORK/results" | sort) | grep "^$(basename "$rt")-" | tail -1)
  dirs+=("$CONF_WORK/results/$new")
done

python3 - "${dirs[@]}" <<'PY'
import sys, os, re
cols = []
for d in sys.argv[1:]:
    name = os.path.basename(d).rsplit("-", 2)[0]
    res = {}
    for line in open(os.path.join(d, "summary.txt")):
        m = re.match(r"(PASS|FAIL|SKIP) (\S+)", line)
        if m:
            res[m.group(2)] = m.group(1)
    cols.append((name, res))
tests = sorted(set().union(*[r.keys() for _, r in cols]))
print("%-36s" % "test" + "".join("%-16s" % n for n, _ in cols))
for t in tests:
    print("%-36s" % t + "".join("%-16s" % r.get(t, "-") for _, r in cols))
print("%-36s" % "files passed" + "".join("%-16s" % sum(v == "PASS" for v in r.values()) for _, r in cols))
berth = cols[0][1]
reg = [t for t in tests if berth.get(t) != "PASS" and any(r.get(t) == "PASS" for _, r in cols[1:])]
print("regressions (pass on runc or crun, not on berth-runtime):", " ".join(reg) or "none")
sys.exit(1 if reg else 0)
PY
