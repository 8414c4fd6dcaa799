// Command berth-runtime is berth's OCI runtime as a binary of its own, with
// runc's command line, for engines that take a runtime path (podman
// --runtime, containerd's runc shim, the runtime-tools validation suite).
package main

import (
	"os"

	"github.com/berth-dev/berth/runtime/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:]))
}
