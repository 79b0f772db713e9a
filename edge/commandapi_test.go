package edge

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/crypto/bcrypt"

	"github.com/fluxo-io/fluxo/bridge/registry"
	"github.com/fluxo-io/fluxo/internal/testutil"
)

func hashOf(t *testing.T, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// TestCommandAPIToMQTT311Reply: POST /api/devices/{id}/commands refuses
// without credentials, with a wrong password and for a user who is not an
// admin; an admin's command reaches an MQTT 3.1.1 device, whose answer on
// {fleet}/{device}/cmd/reply carrying the id turns the command acked, in
// command-acks and on the device's page.
func TestCommandAPIToMQTT311Reply(t *testing.T) {
	core := startCoreNode(t)
	doc := fmt.Sprintf(`users:
  - username: ops
    password: %q
    admin: true
  - username: viewer
    password: %q
  - username: car-3
    password: %q
    acl:
      publish: ["+/%%u/#"]
      subscribe: ["+/%%u/cmd/#"]
`, hashOf(t, "ops-pw"), hashOf(t, "viewer-pw"), hashOf(t, "car-pw"))
	users, err := ParseUsers([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	n := startCommandNodeWith(t, core.KafkaAddr(), t.TempDir(), func(c *NodeConfig) {
		c.Edge.AllowAnonymous = false
		c.Edge.Users = users
	})
	defer n.Shutdown(context.Background())
	acks := newAckLog(t, core.KafkaAddr())
	url := "http://" + n.HTTPAddr() + "/api/devices/car-3/commands"

	post := func(user, pw, body string) (int, string, http.Header) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if user != "" {
			req.SetBasicAuth(user, pw)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	for _, tc := range []struct {
		user, pw, body string
		code           int
		says           string
	}{
		{"", "", `{"name":"reboot"}`, 401, "Basic auth"},
		{"ops", "nope", `{"name":"reboot"}`, 401, "wrong username or password"},
		{"viewer", "viewer-pw", `{"name":"reboot"}`, 403, "not an admin"},
		{"ops", "ops-pw", `{"payload":{}}`, 400, "name is required"},
		{"ops", "ops-pw", `{"name":"x","bogus":1}`, 400, "unknown field"},
	} {
		code, body, h := post(tc.user, tc.pw, tc.body)
		if code != tc.code || !strings.Contains(body, tc.says) {
			t.Errorf("%s %s: got %d %q, want %d saying %q", tc.user, tc.body, code, body, tc.code, tc.says)
		}
		if code == 401 && h.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: got 401 without WWW-Authenticate, want a Basic challenge", tc.user)
		}
	}

	var mu sync.Mutex
	var got []paho.Message
	dev := mustConnect3(t, n.MQTTAddr(), "car-3", func(o *paho.ClientOptions) { o.SetUsername("car-3").SetPassword("car-pw") })
	defer dev.Disconnect(0)
	if tok := dev.Subscribe("cars/car-3/cmd", 1, func(_ paho.Client, m paho.Message) {
		mu.Lock()
		got = append(got, m)
		mu.Unlock()
	}); !tok.WaitTimeout(testutil.Timeout) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	testutil.Eventually(t, "car-3 subscribed in the registry", func() bool {
		d, ok := n.Devices().Get("car-3")
		return ok && d.Subscribed("cars/car-3/cmd")
	})

	code, body, _ := post("ops", "ops-pw", `{"name":"reboot","payload":{"delay_s":5},"expires_ms":600000}`)
	if code != http.StatusAccepted {
		t.Fatalf("admin's command: got %d %s, want 202", code, body)
	}
	var acc CommandAccepted
	if err := json.Unmarshal([]byte(body), &acc); err != nil || !strings.HasPrefix(acc.ID, "cmd-") || acc.Status != registry.StatusSent {
		t.Fatalf("got %s (%v), want a cmd- id and status sent", body, err)
	}
	testutil.Eventually(t, "the command at the device", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 1 })
	var v CommandValue
	if err := json.Unmarshal(got[0].Payload(), &v); err != nil || v.ID != acc.ID || v.Name != "reboot" || string(v.Payload) != `{"delay_s":5}` {
		t.Fatalf("device got %s, want id %s, name reboot and the payload", got[0].Payload(), acc.ID)
	}
	testutil.Eventually(t, "delivered", lastIs(acks, acc.ID, "delivered"))
	if err := publish3(t, dev, "cars/car-3/cmd/reply", 1, false, `{"id":"`+acc.ID+`","ok":true}`); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "acked", lastIs(acks, acc.ID, "delivered", "acked"))

	// The page follows the status record once it is written.
	var view registry.DeviceView
	testutil.Eventually(t, "acked on the device's page", func() bool {
		resp, err := http.Get("http://" + n.HTTPAddr() + "/api/devices/car-3")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		view = registry.DeviceView{}
		b, _ := io.ReadAll(resp.Body)
		if err := json.NewDecoder(bytes.NewReader(b)).Decode(&view); err != nil {
			t.Fatal(err)
		}
		return len(view.Recent) == 1 && view.Recent[0].Status == registry.StatusAcked
	})
	if view.Recent[0].ID != acc.ID || view.Recent[0].Name != "reboot" {
		t.Errorf("got recent commands %+v, want %s reboot acked", view.Recent, acc.ID)
	}
}
