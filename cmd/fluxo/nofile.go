package main

import (
	"syscall"

	"github.com/rs/zerolog"
)

// filesReserved are the file descriptors a node keeps for itself when it
// tells how many connections its file limit leaves room for: listeners,
// segment and index files, databases, connections to the core.
const filesReserved = 256

// raiseFileLimit raises the soft limit on open files (RLIMIT_NOFILE) to
// the hard limit, since every connection is a file descriptor, and
// returns the soft limit in force. Go raises it at start already (since
// Go 1.19, on Linux); doing it here makes it explicit and reports the
// limit for the log.
func raiseFileLimit() (soft, hard uint64, err error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, 0, err
	}
	if lim.Cur < lim.Max {
		raised := lim
		raised.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err == nil {
			lim = raised
		}
	}
	return lim.Cur, lim.Max, nil
}

// logFileLimit raises the file limit and logs the ceiling it sets on
// connections: what (devices for the edge, clients for the core) and at
// most how many.
func logFileLimit(log zerolog.Logger, what string) uint64 {
	soft, hard, err := raiseFileLimit()
	if err != nil {
		log.Warn().Err(err).Msg("cannot read the open file limit")
		return 0
	}
	ceiling := uint64(0)
	if soft > filesReserved {
		ceiling = soft - filesReserved
	}
	log.Info().Uint64("nofile", soft).Uint64("nofile_hard", hard).Uint64(what+"_max", ceiling).
		Msg("open file limit: " + what + "_max connections at most")
	return ceiling
}
