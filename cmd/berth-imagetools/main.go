// Command berth-imagetools is berth's command line with the image tools
// (build, pull, push, login, logout, manifest, registry) — every command,
// the others included. The berth binary runs the image tools through it;
// see cli.ImageToolsBinary for why they are apart.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/berth-dev/berth/cli"
	"github.com/berth-dev/berth/cli/imagetools"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], cli.Streams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}, imagetools.Commands()...)
	stop()
	os.Exit(code)
}
