#!/usr/bin/env bash
# conformance.sh runs the OCI distribution-spec conformance suites against
# `berth registry serve`, and exits non-zero if any test of any run fails.
#
#   tests/registry/conformance.sh            start berth on free loopback ports, test it, stop it
#   tests/registry/conformance.sh HOST:PORT  test a registry already listening there (plain HTTP;
#                                            the runs that need berth's own set-up are left out)
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
# with the optional APIs berth has turned on, in these runs:
#
#   current, legacy         an open registry over plain HTTP
#   current-auth,           TLS and htpasswd basic auth (a certificate and
#   legacy-auth             user made by tests/registry/confcreds); the legacy
#                           suite with OCI_AUTOMATIC_CROSSMOUNT=0, as a
#                           registry with authorization does not mount
#                           without from
#   legacy-preloaded        the legacy suite's pull and content discovery
#                           against content pushed beforehand (OCI_TAG_NAME,
#                           OCI_MANIFEST_DIGEST, OCI_BLOB_DIGEST, OCI_TAG_LIST),
#                           served read-only
#   legacy-nomount          an open registry that does not mount
#                           (--cross-mount off): a mount, even with from,
#                           starts an upload (202)
#
# The legacy suite picks one branch of some pairs of cases by its settings
# and the registry's answers and skips the other; across the four legacy
# runs both branches of every pair run, so every case passes in some run
# (TestConformance checks it).
# Reports (junit.xml, report.html, output.log) land in
# _out/conformance/results/<run>/.
#
# Env: BERTH_BIN (the berth binary; built into _out/ when unset),
# SUITES (the runs above, all by default), CONFORMANCE_OUT (_out/conformance).
set -euo pipefail

MOD=github.com/opencontainers/distribution-spec/conformance
CURRENT=v0.0.0-20260831232431-97274622c111
LEGACY=v0.0.0-20231101194043-f2182352d4cc

top=$(cd "$(dirname "$0")/../.." && pwd)
out=${CONFORMANCE_OUT:-$top/_out/conformance}
if [[ -n ${1:-} ]]; then
	suites=${SUITES:-current legacy legacy-preloaded}
else
	suites=${SUITES:-current legacy current-auth legacy-auth legacy-preloaded legacy-nomount}
fi
bin=$out/bin
mkdir -p "$bin" "$out/results"

# The binaries carry their version in their name, so bumping a pin rebuilds.
cur_bin=$bin/conformance-$CURRENT
leg_bin=$bin/conformance-legacy-$LEGACY.test
if [[ " $suites " == *" current"* && ! -x $cur_bin ]]; then
	echo ">> building $MOD@$CURRENT"
	tmp=$(mktemp -d "$bin/gobin.XXXXXX")
	GOBIN=$tmp GOFLAGS=-mod=mod go install "$MOD@$CURRENT"
	mv "$tmp/conformance" "$cur_bin"
	rmdir "$tmp"
fi
if [[ " $suites " == *" legacy"* && ! -x $leg_bin ]]; then
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
root=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	rm -rf "$root"
}
trap cleanup EXIT

berth=${BERTH_BIN:-}
# start NAME ARGS...: start berth registry serve on a free loopback port
# with ARGS, wait until it listens, and set $started to its address.
start() {
	local name=$1
	shift
	if [[ -z $berth ]]; then
		berth=$out/berth
		(cd "$top" && CGO_ENABLED=0 go build -o "$out/" ./cmd/berth ./cmd/berth-imagetools)
	fi
	local port
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
		echo $((20000 + RANDOM % 20000)))
	"$berth" --root "$root/data" registry serve --addr "127.0.0.1:$port" "$@" >"$out/results/registry-$name.log" 2>&1 &
	local pid=$!
	pids+=("$pid")
	for _ in $(seq 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "berth registry serve ($name) exited:" >&2
			cat "$out/results/registry-$name.log" >&2
			exit 1
		fi
		sleep 0.1
	done
	started=127.0.0.1:$port
}

# Fresh repositories each run, so a registry already holding a run's data
# is tested as if empty.
ns=conformance-$(date +%s)-$$
open=$target
if [[ -z $open ]]; then
	start open --root "$root/registry"
	open=$started
fi

# The auth configuration: TLS (a self-signed certificate) and htpasswd
# basic auth, on a registry of its own.
user=conformance pass=conformance-$$
secure=
if [[ " $suites " == *-auth* ]]; then
	if [[ -n $target ]]; then
		echo "the -auth suites test a registry this script starts; drop them with SUITES when giving HOST:PORT" >&2
		exit 2
	fi
	mkdir -p "$root/creds"
	(cd "$top" && go run ./tests/registry/confcreds "$root/creds" "$user" "$pass")
	start auth --root "$root/registry-auth" --tls-cert "$root/creds/cert.pem" --tls-key "$root/creds/key.pem" \
		--htpasswd "$root/creds/htpasswd"
	secure=$started
fi

# The preloaded configuration: the legacy suite's pull and content
# discovery cases against content pushed beforehand (its mode for
# registries the suite cannot push to), served by a read-only registry
# over the same storage when this script runs berth.
preloaded=
preload() {
	local base=http://$open/v2/$ns/preloaded
	local cfg='{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
	local cfgd
	cfgd=sha256:$(printf %s "$cfg" | sha256sum | cut -d' ' -f1)
	curl -fsS -o /dev/null -X POST -H 'Content-Type: application/octet-stream' --data-binary "$cfg" "$base/blobs/uploads/?digest=$cfgd"
	local m="{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"$cfgd\",\"size\":${#cfg}},\"layers\":[]}"
	local md
	md=sha256:$(printf %s "$m" | sha256sum | cut -d' ' -f1)
	local tag
	for tag in v1 v2 v3 v4; do
		curl -fsS -o /dev/null -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary "$m" "$base/manifests/$tag"
	done
	# Five referrers of the manifest, two of artifactType A: what the
	# suite's referrers cases expect of the subject it would have pushed.
	local empty='{}' ed=sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a
	curl -fsS -o /dev/null -X POST -H 'Content-Type: application/octet-stream' --data-binary "$empty" "$base/blobs/uploads/?digest=$ed"
	local i at r rd
	for i in 1 2 3 4 5; do
		at=application/vnd.nba.strawberry.jam.croissant
		if ((i <= 2)); then at=application/vnd.nhl.peanut.butter.bagel; fi
		r="{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"artifactType\":\"$at\",\"config\":{\"mediaType\":\"application/vnd.oci.empty.v1+json\",\"digest\":\"$ed\",\"size\":2},\"layers\":[{\"mediaType\":\"application/vnd.oci.empty.v1+json\",\"digest\":\"$ed\",\"size\":2}],\"subject\":{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"$md\",\"size\":${#m}},\"annotations\":{\"n\":\"$i\"}}"
		rd=sha256:$(printf %s "$r" | sha256sum | cut -d' ' -f1)
		curl -fsS -o /dev/null -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary "$r" "$base/manifests/$rd"
	done
	preloaded="OCI_TAG_NAME=v1 OCI_MANIFEST_DIGEST=$md OCI_BLOB_DIGEST=$cfgd OCI_TAG_LIST=v1,v2,v3,v4"
}
if [[ " $suites " == *" legacy-preloaded "* ]]; then
	preload
	ro=$open
	if [[ -z $target ]]; then
		start read-only --root "$root/registry" --read-only
		ro=$started
	fi
fi

# The registry that does not mount: every mount request starts an upload.
nomount=
if [[ " $suites " == *" legacy-nomount "* ]]; then
	if [[ -n $target ]]; then
		echo "legacy-nomount tests a registry this script starts; drop it with SUITES when giving HOST:PORT" >&2
		exit 2
	fi
	start nomount --root "$root/registry-nomount" --cross-mount off
	nomount=$started
fi

# legacy_all URL AUTOMATIC_CROSSMOUNT [VAR=value...] runs every workflow of
# the spec-1.1 suite against URL, in $res.
legacy_all() {
	(cd "$res" && env OCI_ROOT_URL="$1" OCI_AUTOMATIC_CROSSMOUNT="$2" "${@:3}" \
		OCI_NAMESPACE="$ns/legacy1" OCI_CROSSMOUNT_NAMESPACE="$ns/legacy2" \
		OCI_TEST_PULL=1 OCI_TEST_PUSH=1 OCI_TEST_CONTENT_DISCOVERY=1 OCI_TEST_CONTENT_MANAGEMENT=1 \
		OCI_HIDE_SKIPPED_WORKFLOWS=0 OCI_REPORT_DIR="$res" \
		"$leg_bin" -test.v) >"$res/output.log" 2>&1
}

status=0
for suite in $suites; do
	res=$out/results/$suite
	rm -rf "$res"
	mkdir -p "$res"
	start=$SECONDS
	set +e
	case $suite in
	current)
		(cd "$res" && env OCI_REGISTRY="$open" OCI_TLS=disabled \
			OCI_REPO1="$ns/repo1" OCI_REPO2="$ns/repo2" OCI_RESULTS_DIR="$res" \
			OCI_API_BLOBS_UPLOAD_CANCEL=true OCI_API_MANIFESTS_TAG_PARAM=true \
			"$cur_bin") >"$res/output.log" 2>&1
		;;
	current-auth)
		# Without from, a mount needs no pull right on any repository, so
		# a registry with authorization does not mount anonymously.
		# It verifies the certificate: SSL_CERT_FILE makes it Go's only root.
		(cd "$res" && env SSL_CERT_FILE="$root/creds/cert.pem" OCI_REGISTRY="$secure" OCI_TLS=enabled OCI_USERNAME="$user" OCI_PASSWORD="$pass" \
			OCI_REPO1="$ns/repo1" OCI_REPO2="$ns/repo2" OCI_RESULTS_DIR="$res" \
			OCI_API_BLOBS_UPLOAD_CANCEL=true OCI_API_MANIFESTS_TAG_PARAM=true OCI_API_BLOBS_MOUNT_ANONYMOUS=false \
			"$cur_bin") >"$res/output.log" 2>&1
		;;
	legacy)
		legacy_all "http://$open" 1
		;;
	legacy-auth)
		# With authorization, a mount without from starts an upload (202):
		# the case the open registry skips.
		legacy_all "https://$secure" 0 OCI_USERNAME="$user" OCI_PASSWORD="$pass"
		;;
	legacy-preloaded)
		# Pull and content discovery only: the suite sets every manifest and
		# config digest to the preloaded ones, so its pushes could not verify.
		(cd "$res" && env $preloaded OCI_ROOT_URL="http://$ro" OCI_NAMESPACE="$ns/preloaded" \
			OCI_TEST_PULL=1 OCI_TEST_CONTENT_DISCOVERY=1 \
			OCI_HIDE_SKIPPED_WORKFLOWS=0 OCI_REPORT_DIR="$res" \
			"$leg_bin" -test.v) >"$res/output.log" 2>&1
		;;
	legacy-nomount)
		# A mount with from answered 202: the branch ("Cross-mounting of
		# nonexistent blob should yield session id") no other run takes.
		legacy_all "http://$nomount" 0
		;;
	*)
		echo "unknown suite $suite" >&2
		exit 2
		;;
	esac
	rc=$?
	set -e
	echo "== $suite: exit $rc in $((SECONDS - start))s; reports in $res"
	if [[ ! -f $res/junit.xml ]]; then
		echo "   no junit.xml; the end of output.log:"
		tail -20 "$res/output.log"
		status=1
	elif [[ $rc != 0 ]]; then
		status=1
	fi
done
exit $status
