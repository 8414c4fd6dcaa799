#!/usr/bin/env bash
# conformance.sh runs the OCI distribution-spec conformance suites against
# `berth registry serve`, and exits non-zero if any test of either fails.
#
#   tests/registry/conformance.sh            start berth on a free loopback port, test it, stop it
#   tests/registry/conformance.sh HOST:PORT  test a registry already listening there (plain HTTP)
#
# The suites come from the Go module proxy at pinned versions, built with
# the ordinary go tools and kept under _out/conformance/bin (a first build
# takes about a minute on two cores, later runs reuse it):
#
#   current  the conformance program of the spec's main branch
#            (go install, it is a main package)
#   legacy   the spec 1.1 ginkgo suite (go test -c, in a module of its own
#            under _out/ that requires it)
#
# Every category runs (pull, push, content discovery, content management),
# with the optional APIs berth has turned on. Reports (junit.xml,
# report.html, output.log) land in _out/conformance/results/<suite>/.
#
# Env: BERTH_BIN (the berth binary; built into _out/ when unset),
# SUITES ("current legacy"), CONFORMANCE_OUT (_out/conformance).
set -euo pipefail

MOD=github.com/opencontainers/distribution-spec/conformance
CURRENT=v0.0.0-20260831232431-97274622c111
LEGACY=v0.0.0-20231101194043-f2182352d4cc

top=$(cd "$(dirname "$0")/../.." && pwd)
out=${CONFORMANCE_OUT:-$top/_out/conformance}
suites=${SUITES:-current legacy}
bin=$out/bin
mkdir -p "$bin" "$out/results"

# The binaries carry their version in their name, so bumping a pin rebuilds.
cur_bin=$bin/conformance-$CURRENT
leg_bin=$bin/conformance-legacy-$LEGACY.test
if [[ " $suites " == *" current "* && ! -x $cur_bin ]]; then
	echo ">> building $MOD@$CURRENT"
	tmp=$(mktemp -d "$bin/gobin.XXXXXX")
	GOBIN=$tmp GOFLAGS=-mod=mod go install "$MOD@$CURRENT"
	mv "$tmp/conformance" "$cur_bin"
	rmdir "$tmp"
fi
if [[ " $suites " == *" legacy "* && ! -x $leg_bin ]]; then
	echo ">> building $MOD@$LEGACY (go test -c)"
	m=$out/legacy-module
	rm -rf "$m"
	mkdir -p "$m"
	# A module of its own: the suite's dependencies stay out of berth's go.mod.
	printf 'module berth.local/conformance\n\ngo 1.24\n' >"$m/go.mod"
	(cd "$m" && GOFLAGS=-mod=mod go get -t "$MOD@$LEGACY" &&
		GOFLAGS=-mod=mod go test -c -o "$leg_bin.tmp" "$MOD")
	mv "$leg_bin.tmp" "$leg_bin"
fi

target=${1:-}
pid=
if [[ -z $target ]]; then
	berth=${BERTH_BIN:-}
	if [[ -z $berth ]]; then
		berth=$out/berth
		(cd "$top" && go build -o "$berth" ./cmd/berth)
	fi
	root=$(mktemp -d)
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
		echo $((20000 + RANDOM % 20000)))
	target=127.0.0.1:$port
	"$berth" --root "$root/data" registry serve --addr "$target" --root "$root/registry" >"$out/results/registry.log" 2>&1 &
	pid=$!
	trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$root"' EXIT
	for _ in $(seq 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
		if ! kill -0 $pid 2>/dev/null; then
			echo "berth registry serve exited:" >&2
			cat "$out/results/registry.log" >&2
			exit 1
		fi
		sleep 0.1
	done
fi

# Fresh repositories each run, so a registry already holding a run's data
# is tested as if empty.
ns=conformance-$(date +%s)-$$
status=0
for suite in $suites; do
	res=$out/results/$suite
	rm -rf "$res"
	mkdir -p "$res"
	start=$SECONDS
	set +e
	case $suite in
	current)
		(cd "$res" && env OCI_REGISTRY="$target" OCI_TLS=disabled \
			OCI_REPO1="$ns/repo1" OCI_REPO2="$ns/repo2" OCI_RESULTS_DIR="$res" \
			OCI_API_BLOBS_UPLOAD_CANCEL=true OCI_API_MANIFESTS_TAG_PARAM=true \
			"$cur_bin") >"$res/output.log" 2>&1
		;;
	legacy)
		(cd "$res" && env OCI_ROOT_URL="http://$target" \
			OCI_NAMESPACE="$ns/legacy1" OCI_CROSSMOUNT_NAMESPACE="$ns/legacy2" \
			OCI_AUTOMATIC_CROSSMOUNT=1 \
			OCI_TEST_PULL=1 OCI_TEST_PUSH=1 OCI_TEST_CONTENT_DISCOVERY=1 OCI_TEST_CONTENT_MANAGEMENT=1 \
			OCI_HIDE_SKIPPED_WORKFLOWS=0 OCI_REPORT_DIR="$res" \
			"$leg_bin" -test.v) >"$res/output.log" 2>&1
		;;
	*)
		echo "unknown suite $suite" >&2
		exit 2
		;;
	esac
	rc=$?
	set -e
	echo "== $suite: exit $rc in $((SECONDS - start))s against $target; reports in $res"
	if [[ ! -f $res/junit.xml ]]; then
		echo "   no junit.xml; the end of output.log:"
		tail -20 "$res/output.log"
		status=1
	elif [[ $rc != 0 ]]; then
		status=1
	fi
done
exit $status
