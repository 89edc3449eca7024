// Command meshctl manages meshway waypoints and the manifests that configure the
// mesh; see `meshctl --help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/meshway/meshway/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], cli.OSEnv())
	stop()
	os.Exit(code)
}
