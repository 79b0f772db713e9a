// Command fluxo is the one binary of fluxo: it runs the core broker, the edge
// node, the bridge and the device simulators, and it is the command-line
// client for topics, producing, consuming and cluster status.
//
// Every subcommand lives in its own file (cmd/fluxo/<name>.go) and registers
// itself with register; root.go builds the command tree, reads the
// configuration (flags, FLUXO_* environment variables, the --config YAML file)
// and sets up the logger before any subcommand runs.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
