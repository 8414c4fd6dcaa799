// Command berth is the berth container engine's command line. It leaves
// out the image tools (build, pull, push, login, logout, manifest,
// registry), which it runs through berth-imagetools, so that the commands
// that run containers start as fast as a Go program of their size can:
// see cli.ImageToolsBinary.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/berth-dev/berth/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], cli.Streams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr})
	stop()
	os.Exit(code)
}
