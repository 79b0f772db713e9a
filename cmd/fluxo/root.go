package main

import (
	"context"
	"fmt"
	"io"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
)

func init() {
	// Run the PersistentPreRunE of every ancestor, root first, so that a
	// subcommand may add its own hook without losing the configuration and
	// logger set up by the root command.
	cobra.EnableTraverseRunHooks = true
	// Millisecond timestamps in JSON logs.
	zerolog.TimeFieldFormat = "2006-01-02T15:04:05.000Z07:00"
}

// commands holds the constructors of the subcommands, in registration order.
var commands []func() *cobra.Command

// register adds a subcommand to every root command built afterwards. Each
// cmd/fluxo/<name>.go calls it from an init function:
//
//	func init() { register(newCoreCmd) }
//
// The constructor only declares the command and its flags; the root command
// fills the flags from FLUXO_* variables and the --config file before the
// subcommand runs, and logger(cmd) returns the configured logger.
func register(newCmd func() *cobra.Command) {
	commands = append(commands, newCmd)
}

// run executes the fluxo command line args and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(stderr, "fluxo: %v\n", err)
		return 1
	}
	return 0
}

// newRootCmd builds the fluxo command tree with every registered subcommand.
func newRootCmd() *cobra.Command {
	var (
		configFile string
		level      = levelFlag(zerolog.InfoLevel)
	)
	root := &cobra.Command{
		Use:   "fluxo",
		Short: "Kafka-style event log with an MQTT front door for IoT fleets",
		Long: `fluxo is a Kafka-style event log with an MQTT front door for IoT fleets.
Devices publish over MQTT to an edge node, which keeps what it receives on disk
and forwards it in snappy batches to a core cluster speaking the Kafka protocol.

Every flag of every command can also be set with an environment variable
FLUXO_<FLAG> (upper case, "-" becomes "_": --log-level is FLUXO_LOG_LEVEL) or
in the YAML file given by --config (keys are flag names: "log-level: debug").
A flag on the command line wins over the environment, which wins over the file,
which wins over the default.

In the file, a section named after a subcommand applies to that subcommand
(and its own subcommands) only and wins over the top level; sections nest
for nested subcommands:

  log-level: info
  version:
    log-level: warn

Keys that no command knows are an error.`,
		Example: `  # show the build of this binary
  fluxo version

  # every flag can come from the environment or a YAML file
  FLUXO_LOG_LEVEL=debug fluxo version
  fluxo --config /etc/fluxo/fluxo.yaml version`,
		SilenceErrors: true, // run prints the error once, prefixed with "fluxo:"
		SilenceUsage:  true, // a failed run is not a usage mistake
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			unknownEnv, err := applyConfig(cmd)
			if err != nil {
				return err
			}
			log := newLogger(cmd.ErrOrStderr(), zerolog.Level(level))
			for _, name := range unknownEnv {
				log.Warn().Str("name", name).Msg("environment variable matches no flag")
			}
			cmd.SetContext(log.WithContext(cmd.Context()))
			return nil
		},
	}
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return fmt.Errorf("%w\nRun '%s --help' for usage", err, cmd.CommandPath())
	})
	root.SetUsageTemplate(root.UsageTemplate() + `
Every flag can also be set with FLUXO_<FLAG> or in the --config file; see 'fluxo --help'.
`)

	pf := root.PersistentFlags()
	pf.StringVar(&configFile, configFlag, "", "YAML file with flag values (keys are flag names)")
	pf.Var(&level, "log-level", "log level: debug, info, warn or error")

	for _, newCmd := range commands {
		root.AddCommand(newCmd())
	}
	return root
}

// logger returns the logger configured by the root command from --log-level.
// It writes to the command's standard error: human-readable when that is a
// terminal, JSON lines otherwise. Library packages get it injected.
func logger(cmd *cobra.Command) zerolog.Logger {
	return *zerolog.Ctx(cmd.Context())
}
