package cluster

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
)

// keyringFile is the keyring Serf rewrites after every key operation, in
// DataDir. Format: a JSON array of base64 keys, the primary first:
//
//	["cGFzc3dvcmRwYXNzd29yZA==", "b3RoZXJrZXlvdGhlcmtleQ=="]
const keyringFile = "serf.keyring"

// KeyringStatus is what the members answered to a keyring operation.
type KeyringStatus struct {
	// Members is how many members gossip knows; Responses how many
	// answered.
	Members   int `json:"members"`
	Responses int `json:"responses"`
	// Errors is each failed member's error, by Serf node name.
	Errors map[string]string `json:"errors,omitempty"`
	// Keys counts the members holding each key (base64), after the
	// operation; Primary those encrypting with it. Only List fills them.
	Keys    map[string]int `json:"keys,omitempty"`
	Primary map[string]int `json:"primary,omitempty"`
}

// Keyring rotates the gossip encryption keys of the whole cluster, like
// `consul keyring`: Install a new key on every member, Use it as the
// primary (the one encrypting) once every member has it, then Remove the
// old one. Each operation is a Serf query answered by every member; it
// fails if one member fails or does not answer (its status says who), and
// can be repeated. Keys are raw AES keys of 16, 24 or 32 bytes.
//
// A Keyring from Cluster.Keys runs the operation on this member; one from
// RemoteKeys sends it to a member's Raft port (with that port's TLS, so
// only a holder of a cluster certificate can rotate keys).
type Keyring struct {
	c *Cluster // local, or nil

	addr string // remote Raft address
	tls  *tlsState
}

// Keys returns the keyring operations, run from this member.
func (c *Cluster) Keys() *Keyring { return &Keyring{c: c} }

// RemoteKeys returns the keyring operations of the cluster whose member
// serves its Raft port at addr; t is the cluster's TLS (nil: plaintext).
func RemoteKeys(addr string, t *TLS) (*Keyring, error) {
	k := &Keyring{addr: addr}
	if t != nil {
		if err := t.validate(); err != nil {
			return nil, err
		}
		k.tls = newTLSState(t)
	}
	return k, nil
}

// Key operations (rpcRequest.KeyOp).
const (
	keyList    = "list"
	keyInstall = "install"
	keyUse     = "use"
	keyRemove  = "remove"
)

// List returns the keys every member holds.
func (k *Keyring) List(ctx context.Context) (KeyringStatus, error) {
	return k.do(ctx, keyList, nil)
}

// Install adds key to every member's keyring, without using it yet.
func (k *Keyring) Install(ctx context.Context, key []byte) (KeyringStatus, error) {
	return k.do(ctx, keyInstall, key)
}

// Use makes key, already installed, the one every member encrypts with.
func (k *Keyring) Use(ctx context.Context, key []byte) (KeyringStatus, error) {
	return k.do(ctx, keyUse, key)
}

// Remove removes key, which must not be the primary, from every member.
func (k *Keyring) Remove(ctx context.Context, key []byte) (KeyringStatus, error) {
	return k.do(ctx, keyRemove, key)
}

func (k *Keyring) do(ctx context.Context, op string, key []byte) (KeyringStatus, error) {
	if op != keyList {
		if err := checkKey(key); err != nil {
			return KeyringStatus{}, err
		}
	}
	if k.c != nil {
		return k.c.keyOp(op, key)
	}
	resp, err := call(ctx, nil, k.addr, k.tls, rpcRequest{Op: opKeys, KeyOp: op, Key: key})
	if err != nil {
		return KeyringStatus{}, err
	}
	var st KeyringStatus
	if resp.Keyring != nil {
		st = *resp.Keyring
	}
	if resp.Code != "" {
		return st, errors.New(resp.Error)
	}
	return st, nil
}

func checkKey(key []byte) error {
	if n := len(key); n != 16 && n != 24 && n != 32 {
		return fmt.Errorf("cluster: keys: key of %d bytes: want 16, 24 or 32", n)
	}
	return nil
}

// keyOp runs a key operation through this member's Serf.
func (c *Cluster) keyOp(op string, key []byte) (KeyringStatus, error) {
	select {
	case <-c.quit:
		return KeyringStatus{}, ErrClosed
	default:
	}
	if !c.serf.EncryptionEnabled() {
		return KeyringStatus{}, errors.New("cluster: keys: gossip encryption is off (no serf key)")
	}
	km := c.serf.KeyManager()
	b64 := base64.StdEncoding.EncodeToString(key)
	var resp *serf.KeyResponse
	var err error
	switch op {
	case keyList:
		resp, err = km.ListKeys()
	case keyInstall:
		resp, err = km.InstallKey(b64)
	case keyUse:
		resp, err = km.UseKey(b64)
	case keyRemove:
		resp, err = km.RemoveKey(b64)
	default:
		return KeyringStatus{}, fmt.Errorf("cluster: keys: unknown operation %q", op)
	}
	var st KeyringStatus
	if resp != nil {
		st = KeyringStatus{Members: resp.NumNodes, Responses: resp.NumResp, Keys: resp.Keys, Primary: resp.PrimaryKeys}
		for node, msg := range resp.Messages {
			if msg == "" {
				continue
			}
			if st.Errors == nil {
				st.Errors = map[string]string{}
			}
			st.Errors[node] = msg
		}
	}
	if err != nil {
		return st, fmt.Errorf("cluster: keys: %s: %w", op, err)
	}
	c.log.Info().Str("op", op).Int("members", st.Members).Msg("serf keyring changed")
	return st, nil
}

// loadKeyring returns the keyring to start memberlist with: the keyring
// file if there is one (it has the keys installed since), else the
// configured SerfKey, else nil (no encryption).
func (c *Cluster) loadKeyring() (*memberlist.Keyring, error) {
	path := filepath.Join(c.cfg.DataDir, keyringFile)
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if c.cfg.SerfKey == nil {
			return nil, nil
		}
		kr, err := memberlist.NewKeyring(nil, c.cfg.SerfKey)
		if err != nil {
			return nil, fmt.Errorf("cluster: serf key: %w", err)
		}
		return kr, nil
	case err != nil:
		return nil, fmt.Errorf("cluster: serf keyring: %w", err)
	}
	keys, err := decodeKeyring(data)
	if err != nil {
		return nil, fmt.Errorf("cluster: serf keyring %s: %w", path, err)
	}
	kr, err := memberlist.NewKeyring(keys[1:], keys[0])
	if err != nil {
		return nil, fmt.Errorf("cluster: serf keyring %s: %w", path, err)
	}
	if c.cfg.SerfKey != nil && !hasKey(keys, c.cfg.SerfKey) {
		c.log.Warn().Str("file", path).Msg("the configured serf key is not in the keyring file: using the file")
	}
	return kr, nil
}

func hasKey(keys [][]byte, key []byte) bool {
	for _, k := range keys {
		if string(k) == string(key) {
			return true
		}
	}
	return false
}

// decodeKeyring parses a keyring file: at least one key, each of a valid
// AES size, no duplicates.
func decodeKeyring(data []byte) ([][]byte, error) {
	var enc []string
	if err := json.Unmarshal(data, &enc); err != nil {
		return nil, fmt.Errorf("not a JSON array of strings: %w", err)
	}
	if len(enc) == 0 {
		return nil, errors.New("no key")
	}
	keys := make([][]byte, 0, len(enc))
	for i, e := range enc {
		k, err := base64.StdEncoding.DecodeString(e)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
		if err := checkKey(k); err != nil {
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
		if hasKey(keys, k) {
			return nil, fmt.Errorf("key %d: listed twice", i)
		}
		keys = append(keys, k)
	}
	return keys, nil
}
