package cluster

import (
	"strings"

	"github.com/rs/zerolog"
)

// The hashicorp libraries log through internal/logadapt into the
// Cluster's zerolog logger with component=raft|serf|memberlist.
//
// A line saying that a member gossips with another key, or without
// encryption against an encrypted member (isKeyError), is logged at error
// whatever its level, as "serf key mismatch" with the line in detail,
// and counted (fluxo_cluster_serf_key_errors_total): such a member never
// joins, and memberlist alone would say so among its debug lines.

// keyErrorLines are what memberlist says (in errors it logs, whatever
// their level and wording around them) when the other side encrypts with
// a key this member lacks, or one side does not encrypt at all. Matched
// lowercased: older versions capitalise them.
var keyErrorLines = []string{
	"no installed keys could decrypt the message",
	"encryption is configured but remote state is not encrypted",
	"remote state is encrypted and encryption is not configured",
}

// isKeyError reports whether a memberlist line reports a key mismatch.
func isKeyError(line string) bool {
	l := strings.ToLower(line)
	for _, k := range keyErrorLines {
		if strings.Contains(l, k) {
			return true
		}
	}
	return false
}

// keyErrorLogger returns the StdLogger hook that logs and counts key
// mismatch lines (count is called for each).
func keyErrorLogger(count func()) func(l zerolog.Logger, component, line string) bool {
	return func(l zerolog.Logger, component, line string) bool {
		if !isKeyError(line) {
			return false
		}
		count()
		l.Error().Str("component", component).Str("detail", line).Msg("serf key mismatch: a member gossips with another key or none")
		return true
	}
}
