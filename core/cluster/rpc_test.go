package cluster

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/hashicorp/memberlist"
)

// FuzzReadFrame feeds arbitrary bytes to the RPC frame reader, as a
// server (a request) and as a client (a response). Invariant: it never
// panics nor allocates past the frame limit, and what it accepts encodes
// to a frame that reads back to the same encoding.
func FuzzReadFrame(f *testing.F) {
	var b bytes.Buffer
	writeFrame(&b, nil, rpcRequest{Op: opApply, Type: 2, Body: []byte(`{"name":"victim"}`), TimeoutMs: 9000})
	f.Add(b.Bytes())
	b.Reset()
	writeFrame(&b, nil, rpcRequest{Op: opKeys, KeyOp: keyInstall, Key: bytes.Repeat([]byte{7}, 16)})
	f.Add(b.Bytes())
	b.Reset()
	writeFrame(&b, nil, rpcResponse{Code: "fenced_leader_epoch", Error: "cluster: stale leader epoch", Status: &rpcStatus{HasState: true, AppliedIndex: 9}})
	f.Add(b.Bytes())
	b.Reset()
	writeFrame(&b, nil, rpcResponse{Keyring: &KeyringStatus{Members: 2, Responses: 2, Keys: map[string]int{"AAAAAAAAAAAAAAAAAAAAAA==": 2}}})
	f.Add(b.Bytes())
	f.Add(binary.BigEndian.AppendUint32(nil, maxFrame+1))
	f.Add([]byte{0, 0, 0, 4, 'n', 'u', 'l', 'l'})
	f.Add([]byte{0, 0, 0, 10, '{', '"', 'o', 'p', '"', ':', '1', '}'})
	f.Fuzz(func(t *testing.T, data []byte) {
		var req rpcRequest
		if readFrame(bytes.NewReader(data), &req) == nil {
			roundTrip(t, req)
		}
		var resp rpcResponse
		if readFrame(bytes.NewReader(data), &resp) == nil {
			roundTrip(t, resp)
		}
	})
}

// roundTrip checks that v's frame reads back into a value with the same
// frame.
func roundTrip[T any](t *testing.T, v T) {
	t.Helper()
	var first bytes.Buffer
	if err := writeFrame(&first, nil, v); err != nil {
		return // e.g. a RawMessage body that is not valid JSON on its own
	}
	var back T
	if err := readFrame(bytes.NewReader(first.Bytes()), &back); err != nil {
		t.Fatalf("reading back %q: got %v, want nil", first.Bytes(), err)
	}
	var second bytes.Buffer
	if err := writeFrame(&second, nil, back); err != nil {
		t.Fatalf("encoding again: got %v, want nil", err)
	}
	if !bytes.Equal(first.Bytes(), second.Bytes()) {
		t.Fatalf("got %q after a round trip, want %q", second.Bytes(), first.Bytes())
	}
}

// FuzzDecodeKeyring parses arbitrary keyring files. Invariant: it never
// panics, and what it accepts is at least one key, each of an AES size,
// without duplicates, that memberlist takes as a keyring.
func FuzzDecodeKeyring(f *testing.F) {
	f.Add([]byte(`["AAAAAAAAAAAAAAAAAAAAAA=="]`))
	f.Add([]byte(`["AAAAAAAAAAAAAAAAAAAAAA==", "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="]`))
	f.Add([]byte(`["AAAAAAAAAAAAAAAAAAAAAA==", "AAAAAAAAAAAAAAAAAAAAAA=="]`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`["c2hvcnQ="]`))
	f.Add([]byte(`{"keys":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := decodeKeyring(data)
		if err != nil {
			return
		}
		if len(keys) == 0 {
			t.Fatal("got no key, want an error")
		}
		seen := map[string]bool{}
		for _, k := range keys {
			if checkKey(k) != nil || seen[string(k)] {
				t.Fatalf("accepted keys %x", keys)
			}
			seen[string(k)] = true
		}
		if _, err := memberlist.NewKeyring(keys[1:], keys[0]); err != nil {
			t.Fatalf("memberlist refused accepted keys: %v", err)
		}
	})
}
