package edge

import (
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func init() {
	passwordCost = bcrypt.MinCost // keep the tests fast
}

func hash(t *testing.T, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func TestACL(t *testing.T) {
	acl := ACL{
		Publish:   []string{"+/%u/#", "shared/%c", "public/#"},
		Subscribe: []string{"+/%u/cmd/#", "inbox/%c/+", "news"},
	}
	pub := []struct {
		topic, user, client string
		want                bool
	}{
		{"fleet/dev-1/temp", "dev-1", "c1", true},
		{"fleet/dev-1/a/b/c", "dev-1", "c1", true},
		{"fleet/dev-1", "dev-1", "c1", true},
		{"fleet/dev-2/temp", "dev-1", "c1", false},
		{"shared/c1", "dev-1", "c1", true},
		{"shared/c2", "dev-1", "c1", false},
		{"public/x", "dev-1", "c1", true},
		{"private/x", "dev-1", "c1", false},
		// a username with wildcards or '/' never widens a rule
		{"fleet/x/temp", "#", "c1", false},
		{"fleet/a/b/temp", "a/b", "c1", false},
		{"fleet/+/temp", "+", "c1", false},
		{"shared/a/b", "dev-1", "a/b", false},
	}
	for _, tt := range pub {
		if got := acl.CanPublish(tt.topic, tt.user, tt.client); got != tt.want {
			t.Errorf("CanPublish(%q, user %q, client %q): got %v, want %v", tt.topic, tt.user, tt.client, got, tt.want)
		}
	}
	sub := []struct {
		filter, user, client string
		want                 bool
	}{
		{"fleet/dev-1/cmd/#", "dev-1", "c1", true},
		{"fleet/dev-1/cmd/reboot", "dev-1", "c1", true},
		{"+/dev-1/cmd/#", "dev-1", "c1", true},
		{"fleet/dev-1/#", "dev-1", "c1", false},
		{"fleet/+/cmd/#", "dev-1", "c1", false},
		{"#", "dev-1", "c1", false},
		{"inbox/c1/x", "dev-1", "c1", true},
		{"inbox/c1/+", "dev-1", "c1", true},
		{"inbox/c1/#", "dev-1", "c1", false},
		{"inbox/c2/x", "dev-1", "c1", false},
		{"news", "dev-1", "c1", true},
		{"$share/g/news", "dev-1", "c1", true},
		{"$share/g/other", "dev-1", "c1", false},
	}
	for _, tt := range sub {
		if got := acl.CanSubscribe(tt.filter, tt.user, tt.client); got != tt.want {
			t.Errorf("CanSubscribe(%q, user %q, client %q): got %v, want %v", tt.filter, tt.user, tt.client, got, tt.want)
		}
	}
	if (ACL{}).CanPublish("a", "u", "c") || (ACL{}).CanSubscribe("a", "u", "c") {
		t.Errorf("empty ACL: got access, want none")
	}
}

func TestParseUsers(t *testing.T) {
	h := hash(t, "pw")
	good := "users:\n  - username: a\n    password: \"" + h + "\"\n    acl:\n      publish: [\"+/%u/#\"]\n"
	u, err := ParseUsers([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if u.Len() != 1 {
		t.Fatalf("got %d users, want 1", u.Len())
	}
	if _, ok := u.Authenticate("a", []byte("pw")); !ok {
		t.Errorf("Authenticate(a, pw): got refused, want accepted")
	}
	if _, ok := u.Authenticate("a", []byte("wrong")); ok {
		t.Errorf("Authenticate(a, wrong): got accepted, want refused")
	}
	if _, ok := u.Authenticate("b", []byte("pw")); ok {
		t.Errorf("Authenticate(b, pw): got accepted, want refused")
	}
	if u, err := ParseUsers(nil); err != nil || u.Len() != 0 {
		t.Errorf("ParseUsers(empty): got %v, %v, want no users", u, err)
	}

	bad := map[string]string{
		"plaintext password": "users:\n  - username: a\n    password: secret\n",
		"duplicate":          "users:\n  - username: a\n    password: \"" + h + "\"\n  - username: a\n    password: \"" + h + "\"\n",
		"empty username":     "users:\n  - password: \"" + h + "\"\n",
		"unknown field":      "users:\n  - username: a\n    password: \"" + h + "\"\n    acl:\n      subcribe: [a]\n",
		"bad filter":         "users:\n  - username: a\n    password: \"" + h + "\"\n    acl:\n      publish: [\"a/#/b\"]\n",
		"not yaml":           "users: [",
	}
	for name, doc := range bad {
		if _, err := ParseUsers([]byte(doc)); err == nil {
			t.Errorf("%s: got no error, want one", name)
		}
	}
}

func TestSetPassword(t *testing.T) {
	// A new file.
	doc, err := SetPassword(nil, "dev-1", "one")
	if err != nil {
		t.Fatal(err)
	}
	u, err := ParseUsers(doc)
	if err != nil {
		t.Fatalf("%v\n%s", err, doc)
	}
	usr, ok := u.Authenticate("dev-1", []byte("one"))
	if !ok {
		t.Fatalf("dev-1/one: got refused, want accepted")
	}
	if !usr.ACL.CanPublish("fleet/dev-1/temp", "dev-1", "x") {
		t.Errorf("new user: got no default publish ACL, want %v", DefaultUserACL().Publish)
	}

	// An edited file keeps its comments, other users and ACLs.
	h := hash(t, "two")
	doc = []byte("# devices of site A\nusers:\n  - username: dev-1 # the first\n    password: \"" + usr.Password + "\"\n" +
		"  - username: panel\n    password: \"" + h + "\"\n    acl:\n      publish: [\"site/#\"]\n      subscribe: [\"site/cmd/#\"]\n")
	if doc, err = SetPassword(doc, "dev-1", "uno"); err != nil {
		t.Fatal(err)
	}
	if doc, err = SetPassword(doc, "dev-2", "dos"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"# devices of site A", "# the first", "site/cmd/#"} {
		if !strings.Contains(string(doc), want) {
			t.Errorf("rewritten file lost %q:\n%s", want, doc)
		}
	}
	u, err = ParseUsers(doc)
	if err != nil {
		t.Fatalf("%v\n%s", err, doc)
	}
	if u.Len() != 3 {
		t.Fatalf("got %d users, want 3:\n%s", u.Len(), doc)
	}
	for _, c := range []struct{ user, pw string }{{"dev-1", "uno"}, {"panel", "two"}, {"dev-2", "dos"}} {
		if _, ok := u.Authenticate(c.user, []byte(c.pw)); !ok {
			t.Errorf("%s/%s: got refused, want accepted:\n%s", c.user, c.pw, doc)
		}
	}
	if _, ok := u.Authenticate("dev-1", []byte("one")); ok {
		t.Errorf("dev-1/one: old password still accepted")
	}
	panel, _ := u.Lookup("panel")
	if len(panel.ACL.Publish) != 1 || panel.ACL.Publish[0] != "site/#" {
		t.Errorf("panel ACL: got %+v, want publish [site/#]", panel.ACL)
	}

	if _, err := SetPassword(doc, "", "x"); err == nil {
		t.Errorf("empty username: got no error")
	}
	if _, err := SetPassword(doc, "x", ""); err == nil {
		t.Errorf("empty password: got no error")
	}
	if _, err := SetPassword([]byte("users: 3\n"), "x", "y"); err == nil {
		t.Errorf("users not a list: got no error")
	}
}

func TestParseUsersAdmin(t *testing.T) {
	u, err := ParseUsers([]byte("users:\n  - username: ops\n    password: \"$2a$04$abcdefghijklmnopqrstuu5Kk6Vh6LxXyQ3b0wqD7UeW4k7kK8Wi2\"\n    admin: true\n  - username: dev\n    password: \"$2a$04$abcdefghijklmnopqrstuu5Kk6Vh6LxXyQ3b0wqD7UeW4k7kK8Wi2\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	ops, _ := u.Lookup("ops")
	dev, _ := u.Lookup("dev")
	if ops == nil || !ops.Admin || dev == nil || dev.Admin {
		t.Errorf("got ops %+v, dev %+v; want ops an admin, dev not", ops, dev)
	}
}
