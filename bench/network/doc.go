// Package network holds berth's networking benchmarks: the cost of
// attaching a container to the default bridge network (with and without a
// published port), and TCP throughput from the host into a container
// through a published port (nftables DNAT from 127.0.0.1) against the
// same traffic sent straight to the container's address.
//
//	sudo go test -run '^$' -bench . ./bench/network/
//
// The side-by-side with podman's `run --network bridge -p` waits for
// berth's run; see bench/README.md.
package network
