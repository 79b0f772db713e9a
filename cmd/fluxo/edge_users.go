package main

import (
	"context"
	"os"
	"time"

	"github.com/rs/zerolog"

	"github.com/fluxo-io/fluxo/edge"
)

// usersReloader keeps an edge's users in step with its users file: it
// reads the file again on every signal on hup (SIGHUP) and when the
// file's modification time or size changes (polled every interval). A
// file that does not load keeps the users in use, and says why in the log.
type usersReloader struct {
	path     string
	edge     *edge.Edge
	log      zerolog.Logger
	interval time.Duration

	seen fileStamp // the stamp of the file last read, good or bad
}

// fileStamp is what the poll compares: a file replaced atomically (a
// rename, as fluxo edge passwd does) changes both.
type fileStamp struct {
	mod  time.Time
	size int64
	ok   bool
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{mod: fi.ModTime(), size: fi.Size(), ok: true}
}

// newUsersReloader starts from the file as it is now (the one the edge
// was started with).
func newUsersReloader(path string, e *edge.Edge, log zerolog.Logger, interval time.Duration) *usersReloader {
	return &usersReloader{path: path, edge: e, log: log, interval: interval, seen: stampOf(path)}
}

// run reloads until ctx ends.
func (r *usersReloader) run(ctx context.Context, hup <-chan os.Signal) {
	tick := time.NewTicker(r.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			r.log.Info().Str("file", r.path).Msg("sighup: reloading the users file")
			r.reload()
		case <-tick.C:
			if st := stampOf(r.path); st != r.seen {
				r.reload()
			}
		}
	}
}

// reload reads the file and, if it loads, replaces the edge's users.
func (r *usersReloader) reload() bool {
	r.seen = stampOf(r.path)
	u, err := loadUsers(r.path)
	if err == nil {
		err = r.edge.SetUsers(u)
	}
	if err != nil {
		r.log.Error().Err(err).Str("file", r.path).Msg("cannot reload the users file; keeping the users in use")
		return false
	}
	r.log.Info().Str("file", r.path).Int("users", u.Len()).Msg("users file reloaded")
	return true
}
