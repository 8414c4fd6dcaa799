// Package registry holds tests, and only tests, of berth's registry server
// seen from outside: the OCI distribution-spec conformance suites (both the
// current program and the spec 1.1 ginkgo suite, at the versions pinned in
// conformance.sh, over plain HTTP and over TLS with basic auth), interop
// with skopeo, podman and berth's own client (plain HTTP and TLS with basic
// auth; a multi-arch index; an artifact with a subject, found through the
// referrers API), and the pull-through cache against upstream registries on
// loopback.
//
// The registry runs in the test process on a free loopback port. Run them with:
//
//	go test ./tests/registry/
//
// The conformance test runs conformance.sh, which builds both suites from the
// Go module proxy at pinned versions into _out/conformance (about a minute
// and a half the first time, nothing after), starts `berth registry serve`
// ($BERTH_BIN, or a berth built into _out/) on free loopback ports, and
// fails on any failed case and on any case no run passes; it is skipped with -short. The interop tests
// install skopeo and podman with apt-get if they are missing, and skip when
// that fails; the berth client tests use $BERTH_BIN or build berth.
package registry
