package main

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"

	"github.com/fluxo-io/fluxo/bridge/spool"
	"github.com/fluxo-io/fluxo/edge"
	"github.com/fluxo-io/fluxo/internal/testutil"
)

// discard is a Sink that keeps nothing: these tests only connect.
type discard struct{}

func (discard) Append(...spool.Message) error { return nil }

// canConnect reports whether user/password connects to the edge.
func canConnect(t *testing.T, addr, user, pass string) bool {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("reload-" + user).
		SetUsername(user).SetPassword(pass).SetAutoReconnect(false).SetConnectTimeout(10 * time.Second))
	tok := c.Connect()
	if !tok.WaitTimeout(20 * time.Second) {
		t.Fatalf("connect %s: no answer", user)
	}
	if tok.Error() != nil {
		return false
	}
	c.Disconnect(10)
	return true
}

// TestUsersFileReload: a user added to the file may connect once the poll
// sees the change, a removed one no longer may, a broken file keeps the
// users in use, and a signal on the hup channel reloads at once.
func TestUsersFileReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "users.yaml")
	if err := setPassword(path, "dev-1", "one"); err != nil {
		t.Fatal(err)
	}
	users, err := loadUsers(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg := edge.DefaultConfig()
	cfg.MQTTAddr, cfg.EdgeID, cfg.Users = "127.0.0.1:0", "reload-test", users
	e, err := edge.New(cfg, discard{})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })

	r := newUsersReloader(path, e, zerolog.New(zerolog.NewTestWriter(t)), 20*time.Millisecond)
	hup := make(chan os.Signal, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.run(ctx, hup); close(done) }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			cancel()
			<-done
		}
	})

	if canConnect(t, e.Addr(), "dev-2", "two") {
		t.Fatalf("dev-2 before it is in the file: got connected, want refused")
	}
	if err := setPassword(path, "dev-2", "two"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "dev-2 connecting once added", func() bool { return canConnect(t, e.Addr(), "dev-2", "two") })

	// Removed: only dev-2 left in the file.
	if err := os.WriteFile(path, mustUser(t, "dev-2", "two"), 0o600); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "dev-1 refused once removed", func() bool { return !canConnect(t, e.Addr(), "dev-1", "one") })

	// A broken file keeps the users in use, whether the poll or SIGHUP
	// reads it.
	if err := os.WriteFile(path, []byte("users: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r.reload() {
		t.Fatalf("reload of a broken file: got true, want false")
	}
	hup <- syscall.SIGHUP
	if !canConnect(t, e.Addr(), "dev-2", "two") {
		t.Fatalf("dev-2 after a broken file: got refused, want connected (the users in use kept)")
	}

	// SIGHUP reloads at once, with the poll out of the picture.
	cancel()
	<-done
	stopped = true
	ctx2, cancel2 := context.WithCancel(context.Background())
	done2 := make(chan struct{})
	r.interval = time.Hour
	go func() { r.run(ctx2, hup); close(done2) }()
	defer func() { cancel2(); <-done2 }()
	if err := os.WriteFile(path, mustUser(t, "dev-3", "three"), 0o600); err != nil {
		t.Fatal(err)
	}
	hup <- syscall.SIGHUP
	testutil.Eventually(t, "dev-3 connecting after SIGHUP", func() bool { return canConnect(t, e.Addr(), "dev-3", "three") })
}

// mustUser returns a users file with one user.
func mustUser(t *testing.T, user, pass string) []byte {
	t.Helper()
	doc, err := edge.SetPassword(nil, user, pass)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}
