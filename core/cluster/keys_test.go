package cluster

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fluxo-io/fluxo/internal/testutil"
)

// TestKeyRotation: a 2-member cluster rotates its gossip key from A to B
// (install B, use B, remove A), through a local and a remote Keyring,
// and stays one cluster; the keyring survives a restart.
func TestKeyRotation(t *testing.T) {
	keyA, keyB := bytes.Repeat([]byte{0xa}, 16), bytes.Repeat([]byte{0xb}, 32)
	b64A, b64B := base64.StdEncoding.EncodeToString(keyA), base64.StdEncoding.EncodeToString(keyB)
	cfgA := testConfig(t, 1, 2)
	cfgA.SerfKey = keyA
	a := open(t, cfgA)
	cfgB := testConfig(t, 2, 2, a.SerfAddr())
	cfgB.SerfKey = keyA
	b := open(t, cfgB)
	ctx := ctxFor(t, 30*time.Second)
	for _, c := range []*Cluster{a, b} {
		if err := c.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	remote, err := RemoteKeys(b.RaftAddr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := remote.List(ctx)
	if err != nil || !reflect.DeepEqual(st.Keys, map[string]int{b64A: 2}) || !reflect.DeepEqual(st.Primary, map[string]int{b64A: 2}) {
		t.Fatalf("list: got %+v, %v, want key A on 2 members", st, err)
	}
	if _, err := a.Keys().Install(ctx, keyB); err != nil {
		t.Fatalf("install B: %v", err)
	}
	if _, err := remote.Use(ctx, keyB); err != nil {
		t.Fatalf("use B: %v", err)
	}
	if _, err := a.Keys().Remove(ctx, keyA); err != nil {
		t.Fatalf("remove A: %v", err)
	}
	if _, err := a.Keys().Remove(ctx, keyB); err == nil {
		t.Fatal("remove the primary: got nil, want an error")
	}
	if _, err := remote.Install(ctx, []byte("short")); err == nil {
		t.Fatal("install a 5-byte key: got nil, want an error")
	}
	st, err = a.Keys().List(ctx)
	if err != nil || !reflect.DeepEqual(st.Keys, map[string]int{b64B: 2}) || !reflect.DeepEqual(st.Primary, map[string]int{b64B: 2}) {
		t.Fatalf("list after rotation: got %+v, %v, want key B on 2 members", st, err)
	}
	// Still one cluster: gossip goes on with B, and Raft through it.
	if _, err := b.Apply(ctx, CreateTopic{Name: "after-rotation", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	if m := memberOf(a, 2); m.Status != "alive" {
		t.Fatalf("got member %+v, want alive", m)
	}
	data, err := os.ReadFile(filepath.Join(b.cfg.DataDir, keyringFile))
	if err != nil {
		t.Fatal(err)
	}
	if keys, err := decodeKeyring(data); err != nil || !reflect.DeepEqual(keys, [][]byte{keyB}) {
		t.Fatalf("keyring file: got %x, %v, want key B", keys, err)
	}
	// A restart with the stale configured key A uses the file's key B and
	// gossips with a again.
	b.Close()
	testutil.EventuallyWithin(t, 10*time.Second, "b failed", func() bool { return memberOf(a, 2).Status == "failed" })
	b = reopen(t, b, a.SerfAddr())
	testutil.EventuallyWithin(t, 10*time.Second, "b alive again", func() bool { return memberOf(a, 2).Status == "alive" })
	if err := b.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	st, err = b.Keys().List(ctx)
	if err != nil || !reflect.DeepEqual(st.Keys, map[string]int{b64B: 2}) {
		t.Fatalf("list after restart: got %+v, %v, want key B on 2 members", st, err)
	}
	if got := promtest.ToFloat64(a.keyErrors); got != 0 {
		t.Fatalf("got %v key errors, want 0", got)
	}
}

// TestKeysWithoutEncryption: keyring operations fail while gossip is in
// clear.
func TestKeysWithoutEncryption(t *testing.T) {
	c := open(t, testConfig(t, 1, 0))
	if _, err := c.Keys().List(ctxFor(t, 5*time.Second)); err == nil {
		t.Fatal("list without a serf key: got nil, want an error")
	}
}
