package edge

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"

	"github.com/fluxo-io/fluxo/bridge/route"
)

// The users file is YAML:
//
//	users:
//	  - username: sensor-17
//	    password: "$2a$10$..."          # bcrypt hash (fluxo edge passwd FILE USER)
//	    acl:
//	      publish:   ["+/%u/#"]          # filters the user may publish on
//	      subscribe: ["+/%u/cmd/#"]      # filters the user may subscribe to
//	  - username: ops
//	    password: "$2a$10$..."
//	    admin: true                      # may send commands over HTTP
//
// An admin (admin: true) may send commands to devices with POST
// /api/devices/{id}/commands on the edge's HTTP port (Basic auth with the
// same username and password). Being an admin gives no MQTT rights: those
// are the acl's.
//
// A user without a password authenticates only with a client certificate
// (Config.ClientCert): its identity is the username.
//
// In ACL filters, %u stands for the username and %c for the client id. A
// rule whose placeholder would bring a '/', '+' or '#' into the filter (a
// username or client id containing one, or an empty one) never matches. A
// user with no rule may connect but neither publish nor subscribe.

// User is one entry of the users file.
type User struct {
	Username string `yaml:"username"`
	Password string `yaml:"password,omitempty"` // bcrypt hash; empty: a client certificate only
	ACL      ACL    `yaml:"acl"`
	// Admin may send commands over the edge's HTTP API (the console).
	Admin bool `yaml:"admin,omitempty"`
}

// ACL lists the topic filters a user may publish on and subscribe to.
type ACL struct {
	Publish   []string `yaml:"publish,omitempty"`
	Subscribe []string `yaml:"subscribe,omitempty"`
}

// CanPublish reports whether a client may publish on topic.
func (a ACL) CanPublish(topic, username, clientID string) bool {
	for _, f := range a.Publish {
		if f, ok := expand(f, username, clientID); ok && route.MatchFilter(f, topic) {
			return true
		}
	}
	return false
}

// CanSubscribe reports whether a client may subscribe to filter (or
// receive a message on the topic name filter): some rule must cover every
// topic the filter can match. A shared subscription
// ($share/{group}/{filter}) is checked on its filter.
func (a ACL) CanSubscribe(filter, username, clientID string) bool {
	filter = stripShare(filter)
	for _, f := range a.Subscribe {
		if f, ok := expand(f, username, clientID); ok && route.Covers(f, filter) {
			return true
		}
	}
	return false
}

// expand replaces %u and %c in an ACL filter; ok is false when the value
// would change the filter's structure.
func expand(filter, username, clientID string) (string, bool) {
	if strings.Contains(filter, "%u") {
		if !safeLevel(username) {
			return "", false
		}
		filter = strings.ReplaceAll(filter, "%u", username)
	}
	if strings.Contains(filter, "%c") {
		if !safeLevel(clientID) {
			return "", false
		}
		filter = strings.ReplaceAll(filter, "%c", clientID)
	}
	return filter, true
}

func safeLevel(s string) bool {
	return s != "" && !strings.ContainsAny(s, "/+#")
}

// Users is a loaded users file. It is immutable and safe for concurrent use.
type Users struct {
	byName map[string]*User
}

type usersDoc struct {
	Users []User `yaml:"users"`
}

// ParseUsers parses and checks the content of a users file: unknown
// fields, duplicate or empty usernames, passwords that are not bcrypt
// hashes and malformed filters are errors.
func ParseUsers(b []byte) (*Users, error) {
	var doc usersDoc
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	u := &Users{byName: make(map[string]*User, len(doc.Users))}
	for i := range doc.Users {
		usr := &doc.Users[i]
		if usr.Username == "" {
			return nil, fmt.Errorf("user %d: empty username", i+1)
		}
		if _, dup := u.byName[usr.Username]; dup {
			return nil, fmt.Errorf("user %q: listed twice", usr.Username)
		}
		if _, err := bcrypt.Cost([]byte(usr.Password)); usr.Password != "" && err != nil {
			return nil, fmt.Errorf("user %q: password is not a bcrypt hash (set it with fluxo edge passwd): %w", usr.Username, err)
		}
		for _, f := range append(append([]string(nil), usr.ACL.Publish...), usr.ACL.Subscribe...) {
			if !route.ValidFilter(f) {
				return nil, fmt.Errorf("user %q: invalid acl filter %q", usr.Username, f)
			}
		}
		u.byName[usr.Username] = usr
	}
	return u, nil
}

// Len returns the number of users.
func (u *Users) Len() int { return len(u.byName) }

// Lookup returns the user with that name.
func (u *Users) Lookup(username string) (*User, bool) {
	usr, ok := u.byName[username]
	return usr, ok
}

// Authenticate checks a username and password; a user without a password
// (certificate only) never authenticates with one. An unknown user costs the
// same bcrypt comparison as a known one, so the answer time does not tell
// which usernames exist.
func (u *Users) Authenticate(username string, password []byte) (*User, bool) {
	usr, ok := u.byName[username]
	if !ok || usr.Password == "" {
		_ = bcrypt.CompareHashAndPassword(dummyHash(), password)
		return nil, false
	}
	if bcrypt.CompareHashAndPassword([]byte(usr.Password), password) != nil {
		return nil, false
	}
	return usr, true
}

// passwordCost is the bcrypt cost of the hashes SetPassword writes.
var passwordCost = bcrypt.DefaultCost

var dummyHash = sync.OnceValue(func() []byte {
	h, err := bcrypt.GenerateFromPassword([]byte("not a password"), passwordCost)
	if err != nil {
		panic("edge: bcrypt of a constant failed: " + err.Error())
	}
	return h
})

// DefaultUserACL is the ACL given to a user that SetPassword creates: the
// device publishes under {fleet}/{username}/... and receives commands on
// {fleet}/{username}/cmd/....
func DefaultUserACL() ACL {
	return ACL{
		Publish:   []string{"+/%u/#"},
		Subscribe: []string{"+/%u/cmd/#"},
	}
}

// SetPassword returns the users file doc (YAML; nil or empty for a new
// file) with username's password set to a bcrypt hash of password: the
// user's entry is updated, or added with DefaultUserACL. Comments, other
// users and ACLs are kept. The result is checked with ParseUsers. Reading
// and writing the file is the caller's.
func SetPassword(doc []byte, username, password string) ([]byte, error) {
	if username == "" || strings.ContainsAny(username, "\x00\n\r") {
		return nil, fmt.Errorf("edge: invalid username %q", username)
	}
	if password == "" {
		return nil, errors.New("edge: empty password")
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), passwordCost)
	if err != nil {
		return nil, fmt.Errorf("edge: cannot hash password: %w", err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(doc, &root); err != nil {
		return nil, fmt.Errorf("edge: users file: %w", err)
	}
	if err := setPasswordNode(&root, username, string(hash)); err != nil {
		return nil, fmt.Errorf("edge: users file: %w", err)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&root); err != nil {
		return nil, fmt.Errorf("edge: cannot encode users file: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("edge: cannot encode users file: %w", err)
	}
	if _, err := ParseUsers(buf.Bytes()); err != nil {
		return nil, fmt.Errorf("edge: users file: %w", err)
	}
	return buf.Bytes(), nil
}

// setPasswordNode edits the YAML document in place.
func setPasswordNode(doc *yaml.Node, username, hash string) error {
	if doc.Kind == 0 {
		doc.Kind = yaml.DocumentNode
	}
	if doc.Kind != yaml.DocumentNode {
		return errors.New("not a YAML document")
	}
	if len(doc.Content) == 0 {
		doc.Content = []*yaml.Node{{Kind: yaml.MappingNode, Tag: "!!map"}}
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return errors.New("top level is not a mapping with a users list")
	}
	users := mapValue(root, "users")
	if users == nil {
		users = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		root.Content = append(root.Content, scalar("users"), users)
	}
	if users.Kind == yaml.ScalarNode && users.Tag == "!!null" {
		*users = yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	}
	if users.Kind != yaml.SequenceNode {
		return errors.New("users is not a list")
	}
	for _, u := range users.Content {
		if u.Kind != yaml.MappingNode {
			continue
		}
		if n := mapValue(u, "username"); n != nil && n.Kind == yaml.ScalarNode && n.Value == username {
			if p := mapValue(u, "password"); p != nil {
				*p = *scalar(hash)
			} else {
				u.Content = append(u.Content, scalar("password"), scalar(hash))
			}
			return nil
		}
	}
	acl := DefaultUserACL()
	users.Content = append(users.Content, &yaml.Node{
		Kind: yaml.MappingNode,
		Tag:  "!!map",
		Content: []*yaml.Node{
			scalar("username"), scalar(username),
			scalar("password"), scalar(hash),
			scalar("acl"), {
				Kind: yaml.MappingNode,
				Tag:  "!!map",
				Content: []*yaml.Node{
					scalar("publish"), flowSeq(acl.Publish),
					scalar("subscribe"), flowSeq(acl.Subscribe),
				},
			},
		},
	})
	return nil
}

func mapValue(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func scalar(v string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v}
}

func flowSeq(vs []string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Style: yaml.FlowStyle}
	for _, v := range vs {
		s := scalar(v)
		s.Style = yaml.DoubleQuotedStyle
		n.Content = append(n.Content, s)
	}
	return n
}
