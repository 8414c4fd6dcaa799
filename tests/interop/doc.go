// Package interop holds tests, and only tests, that images move between berth
// and its peers on the same machine: an image berth saves loads and runs in
// podman, and images that podman and skopeo write (docker-archive and OCI
// archive, uncompressed, gzip and zstd) load in berth with the same names,
// configuration, layer diffIDs and image ID (the config digest) that podman
// reports.
//
// The tests run Debian's podman and skopeo against private storage (see
// internal/testutil) and are skipped, with the reason, where those are not
// installed. Run them with:
//
//	go test ./tests/interop/
//
// Set BERTH_BIN to test a berth binary already built; otherwise one is built
// from ./cmd/berth.
package interop
