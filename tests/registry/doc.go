// Package registry holds tests, and only tests, of berth's registry server
// seen from outside: the OCI distribution-spec conformance suites (both the
// current program and the spec 1.1 ginkgo suite, at the versions pinned by
// the shared conformance script) and interop with skopeo and podman.
//
// The registry runs in the test process on a free loopback port. Run them with:
//
//	go test ./tests/registry/
//
// The conformance test needs the shared script ../shared/conformance/
// distribution-spec/run.sh beside the checkout (or $BERTH_CONFORMANCE_DIR)
// and Go to build the suites (≈1.5 min the first time, ≈25 s after); it is
// skipped with -short. The interop tests install skopeo and podman with
// apt-get if they are missing, and skip when that fails.
package registry
