package main

import (
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/fluxo-io/fluxo/bridge/route"
	"github.com/fluxo-io/fluxo/bridge/spool"
	"github.com/fluxo-io/fluxo/bridge/uplink"
)

// forwardFlags are the spool and uplink flags fluxo edge and fluxo bridge
// share: the same names, defaults and help.
type forwardFlags struct {
	syncPolicy string
}

// add declares them on f, filling sc and uc; dirHelp describes --spool-dir.
func (ff *forwardFlags) add(f *pflag.FlagSet, spoolDir *string, dirHelp string, sc *spool.Config, uc *uplink.Config) {
	f.StringVar(spoolDir, "spool-dir", "./spool", dirHelp)
	f.StringVar(&ff.syncPolicy, "spool-sync", "always", "spool durability: always, batch or never")
	f.DurationVar(&sc.SyncInterval, "spool-sync-interval", sc.SyncInterval, "fsync period of --spool-sync batch")
	f.DurationVar(&sc.CommitDelay, "spool-commit-delay", sc.CommitDelay, "with --spool-sync always, how long a busy telemetry lane waits for more messages to share its next fsync (alarms never wait; 0: never)")
	f.Int64Var(&sc.MaxBytes, "spool-max-bytes", sc.MaxBytes, "spool disk budget; when full the oldest telemetry is evicted, alarms never")
	f.DurationVar(&sc.MaxAge, "spool-max-age", 0, "expire undelivered telemetry older than this (0: never)")
	f.StringSliceVar(&uc.Brokers, "core", uc.Brokers, "core (or Kafka) brokers, comma separated; not given: bootstrap.servers of --client-config if it has one")
	coreSec.add(f)
	f.DurationVar(&uc.Linger, "linger", uc.Linger, "how long telemetry waits to fill a batch (alarms never wait)")
	f.IntVar(&uc.MaxBatchBytes, "batch-bytes", uc.MaxBatchBytes, "records per send, in bytes before compression")
	f.BoolVar(&uc.Compress, "compress", true, "snappy-compress batches")
	f.Int64Var(&uc.MaxBytesPerSec, "uplink-max-bytes-per-sec", 0, "cap on bytes sent to the core per second (0: none); alarms go first")
}

// apply sets what needs parsing once the flags of cmd are read: the spool's
// sync policy, and the TLS, SASL and brokers of the uplink.
func (ff *forwardFlags) apply(cmd *cobra.Command, sc *spool.Config, uc *uplink.Config) error {
	p, err := spool.ParseSyncPolicy(ff.syncPolicy)
	if err != nil {
		return err
	}
	sc.Sync = p
	sec, err := clientSecurityOf(cmd, coreSec)
	if err != nil {
		return err
	}
	uc.TLS, uc.SASL = sec.TLS, sec.SASL
	if sec.Brokers != nil {
		uc.Brokers = sec.Brokers
	}
	return nil
}

// parseRoutes parses the --route flags of fluxo edge and fluxo bridge.
func parseRoutes(flags []string) ([]route.Route, error) {
	routes := make([]route.Route, 0, len(flags))
	for _, f := range flags {
		r, err := route.ParseRoute(f)
		if err != nil {
			return nil, err
		}
		routes = append(routes, r)
	}
	return routes, nil
}
