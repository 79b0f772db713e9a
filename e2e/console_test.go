//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/crypto/bcrypt"
)

// browser is a headless Chromium tab that records the page's JavaScript
// errors and every request that would leave 127.0.0.1 (those are failed
// instead of sent).
type browser struct {
	ctx context.Context

	mu       sync.Mutex
	jsErrors []string
	outside  []string
}

// newBrowser starts Chromium, or skips the test without it (fails under
// CI=true, where .ci/run installs it).
func newBrowser(t *testing.T) *browser {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("chromium not found on PATH: got %v, want it installed (.ci/run installs it)", err)
		}
		t.Skip("chromium not found on PATH (apt-get install chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("no-proxy-server", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelC(); cancelA() })
	b := &browser{ctx: ctx}
	_, err = chromedp.Run(ctx, chromedp.Func(func(_ context.Context, tg *chromedp.Target) error {
		// Subscribed before the domains are enabled, so nothing is missed;
		// the loops end with the browser's context.
		paused := cdp.Events(ctx, tg, fetch.RequestPaused)
		thrown := cdp.Events(ctx, tg, runtime.ExceptionThrown)
		logged := cdp.Events(ctx, tg, runtime.ConsoleAPICalled)
		go func() {
			for ev, err := range paused {
				if err != nil {
					return
				}
				if ev.Request != nil && local(ev.Request.URL) {
					cdp.Call(ctx, tg, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
					continue
				}
				if ev.Request != nil {
					b.note(&b.outside, ev.Request.URL)
				}
				cdp.Call(ctx, tg, fetch.FailRequest, fetch.FailRequestParams{RequestID: ev.RequestID, ErrorReason: network.ErrorReasonBlockedByClient})
			}
		}()
		go func() {
			for ev, err := range thrown {
				if err != nil {
					return
				}
				d := ev.ExceptionDetails
				msg := d.Text
				if d.Exception != nil {
					msg += " " + d.Exception.Description
				}
				b.note(&b.jsErrors, msg)
			}
		}()
		go func() {
			for ev, err := range logged {
				if err != nil {
					return
				}
				if ev.Type != runtime.ConsoleAPICalledTypeError && ev.Type != runtime.ConsoleAPICalledTypeAssert {
					continue
				}
				var parts []string
				for _, a := range ev.Args {
					parts = append(parts, fmt.Sprint(string(a.Value), a.Description))
				}
				b.note(&b.jsErrors, "console."+string(ev.Type)+": "+strings.Join(parts, " "))
			}
		}()
		if _, err := cdp.Call(ctx, tg, runtime.Enable, cdp.Empty{}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, tg, fetch.Enable, fetch.EnableParams{})
		return err
	}))
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	t.Cleanup(func() { b.check(t) })
	return b
}

func (b *browser) note(list *[]string, s string) {
	b.mu.Lock()
	*list = append(*list, s)
	b.mu.Unlock()
}

// check fails the test on JavaScript errors and requests that left
// 127.0.0.1.
func (b *browser) check(t *testing.T) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.jsErrors) > 0 {
		t.Errorf("javascript errors: got %q, want none", b.jsErrors)
	}
	if len(b.outside) > 0 {
		t.Errorf("requests leaving 127.0.0.1: got %q, want none", b.outside)
	}
}

// local: a request to 127.0.0.1, or one that is no network request.
func local(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	switch u.Scheme {
	case "data", "blob", "about":
		return true
	}
	return u.Hostname() == "127.0.0.1"
}

// run runs chromedp actions with a deadline.
func (b *browser) run(t *testing.T, what string, timeout time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// screenshot writes the page to dir/name and, when
// FLUXO_CONSOLE_SCREENSHOTS names a directory (make console-screenshots
// sets docs/), there too.
func (b *browser) screenshot(t *testing.T, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	dirs := []string{t.TempDir()}
	if d := os.Getenv("FLUXO_CONSOLE_SCREENSHOTS"); d != "" {
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		t.Logf("screenshot: %s", p)
	}
}

// waitJS polls a JavaScript expression until it is true.
func (b *browser) waitJS(t *testing.T, what, expr string, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(200*time.Millisecond))); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// TestConsoleCore: the core's console, served by broker 1 of three, shows
// the brokers alive and a replicated topic's partitions; a broker killed
// with SIGKILL turns failed on the page, and a partition it led shows
// another leader.
func TestConsoleCore(t *testing.T) {
	t.Parallel()
	b := newBrowser(t)
	bin := buildFluxo(t)
	cores := startCoreCluster(t, bin, 3)
	var seeds []string
	for _, c := range cores {
		seeds = append(seeds, c.kafka)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 3, 3, nil, "console"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 30; i++ {
		cl.Produce(ctx, &kgo.Record{Topic: "console", Value: []byte(fmt.Sprint(i))}, nil)
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	b.run(t, "open the core console", 30*time.Second, chromedp.Navigate("http://"+cores[0].http+"/"))
	b.waitJS(t, "three alive brokers", `document.querySelectorAll('#brokers [data-status="alive"]').length === 3`, 60*time.Second)
	b.waitJS(t, "the topic's 3 partitions", `['console/0','console/1','console/2'].every(k => document.querySelector('#partitions tr[data-key="'+k+'"] [data-leader]'))`, 60*time.Second)

	// Kill a broker other than the one serving the page that leads a
	// partition of the topic.
	var victim int32 = -1
	var part int32
	for p := int32(0); p < 3 && victim < 0; p++ {
		if l := leaderOf(t, cl, "console", p); l != 1 {
			victim, part = l, p
		}
	}
	if victim < 0 {
		// Broker 1 leads all three: move nothing, kill broker 2, and
		// watch its row only.
		victim, part = 2, -1
	}
	b.screenshot(t, "console-core.png")
	cores[victim-1].kill()
	b.waitJS(t, fmt.Sprintf("broker %d failed", victim),
		fmt.Sprintf(`!!document.querySelector('#brokers tr[data-key="broker-%d"] [data-status="failed"]')`, victim), 90*time.Second)
	if part >= 0 {
		b.waitJS(t, fmt.Sprintf("partition %d's leader moving off broker %d", part, victim),
			fmt.Sprintf(`(() => { const e = document.querySelector('#partitions tr[data-key="console/%d"] [data-leader]'); return e && e.dataset.leader !== "%d" && e.dataset.leader !== "-1"; })()`, part, victim),
			90*time.Second)
	}
	b.screenshot(t, "console-core-failed.png")
}

// TestConsoleEdge: the edge's console shows its lanes, with the alarms a
// device published delivered, and the spool against its budget; the
// device table is empty, without errors, when the edge serves no device
// registry.
func TestConsoleEdge(t *testing.T) {
	t.Parallel()
	b := newBrowser(t)
	bin := buildFluxo(t)
	core := startCoreProc(t, bin)
	e := startEdgeProc(t, bin, core.kafka, "--spool-max-bytes", "67108864")
	c := paho.NewClient(paho.NewClientOptions().AddBroker(e.broker()).SetClientID("console-dev"))
	if tok := c.Connect(); !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(10)
	for i := 0; i < 20; i++ {
		if tok := c.Publish("fleet/console-dev/alarm/door", 1, false, fmt.Sprint(i)); !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
		if tok := c.Publish("fleet/console-dev/temp", 1, false, fmt.Sprint(i)); !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	b.run(t, "open the edge console", 30*time.Second, chromedp.Navigate("http://"+e.http+"/"))
	b.waitJS(t, "both lanes", `!!document.querySelector('#lanes tr[data-key="lane-alarm"]') && !!document.querySelector('#lanes tr[data-key="lane-telemetry"]')`, 30*time.Second)
	b.waitJS(t, "the spool and its budget", `document.getElementById('spool-total').textContent.includes('of 64.0 MiB') && !!document.querySelector('#spool tr[data-key="spool-alarm"]')`, 30*time.Second)
	b.waitJS(t, "the uplink connected", `document.getElementById('uplink').dataset.state === 'connected'`, 60*time.Second)
	b.waitJS(t, "an alarm latency", `!document.querySelector('#latency tbody tr td:nth-child(2)').textContent.includes('–')`, 60*time.Second)
	b.waitJS(t, "the device table, empty", `!!document.querySelector('#devices .empty, #devices tr[data-key]')`, 30*time.Second)
	b.screenshot(t, "console-edge.png")
}

// TestEdgeSIGHUP: SIGHUP makes a running edge read its users file again:
// a user added to it may connect, and the edge keeps running.
func TestEdgeSIGHUP(t *testing.T) {
	t.Parallel()
	bin := buildFluxo(t)
	core := startCoreProc(t, bin)
	users := filepath.Join(t.TempDir(), "users.yaml")
	passwd := func(user, pw string) {
		cmd := exec.Command(bin, "edge", "passwd", "--stdin", users, user)
		cmd.Stdin = strings.NewReader(pw + "\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("fluxo edge passwd: %v\n%s", err, out)
		}
	}
	passwd("dev-1", "one")
	// No poll: only SIGHUP reloads.
	e := startEdgeProc(t, bin, core.kafka, "--users", users, "--users-poll-interval", "1h")
	connects := func(user, pw string) bool {
		c := paho.NewClient(paho.NewClientOptions().AddBroker(e.broker()).SetClientID("hup-" + user).
			SetUsername(user).SetPassword(pw).SetAutoReconnect(false))
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
	if !connects("dev-1", "one") || connects("dev-2", "two") {
		t.Fatalf("before the reload: got dev-1 %v, dev-2 %v; want true, false", connects("dev-1", "one"), connects("dev-2", "two"))
	}
	passwd("dev-2", "two")
	if err := e.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !connects("dev-2", "two") {
		if !e.running() {
			t.Fatalf("edge after SIGHUP: got exited, want running\n%s", e.history.tail())
		}
		if time.Now().After(deadline) {
			t.Fatalf("dev-2 after SIGHUP: got refused, want connected\n%s", e.history.tail())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !e.running() {
		t.Fatalf("edge after SIGHUP: got exited, want running")
	}
	if !strings.Contains(e.logs.String(), "users file reloaded") {
		t.Errorf("edge log: got no \"users file reloaded\", want it")
	}
}

// TestConsoleDevices: on the edge's console, devices appear in the table
// as they connect, a device's last seen advances as it publishes, a
// device that disconnects shows under the quiet filter (a threshold of a
// few seconds) while the ones still publishing do not, and a command sent
// from a device's page with the form (an admin of the users file) reaches
// the device, an MQTT 3.1.1 client that answers on its reply topic, and
// turns acked on the page.
func TestConsoleDevices(t *testing.T) {
	t.Parallel()
	b := newBrowser(t)
	bin := buildFluxo(t)
	core := startCoreProc(t, bin)
	hash, err := bcrypt.GenerateFromPassword([]byte("ops-secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	users := filepath.Join(t.TempDir(), "users.yaml")
	if err := os.WriteFile(users, fmt.Appendf(nil, "users:\n  - username: ops\n    password: %q\n    admin: true\n", hash), 0o600); err != nil {
		t.Fatal(err)
	}
	// Anonymous devices, and an admin for the console's commands.
	e := startEdgeProc(t, bin, core.kafka, "--users", users, "--commands-from", "start")
	b.run(t, "open the edge console", 30*time.Second, chromedp.Navigate("http://"+e.http+"/"))
	b.waitJS(t, "the device table, empty", `!!document.querySelector('#devices .empty')`, 30*time.Second)

	var mu sync.Mutex
	received := map[string][]string{}
	connect := func(id string) paho.Client {
		c := paho.NewClient(paho.NewClientOptions().AddBroker(e.broker()).SetClientID(id).SetAutoReconnect(false))
		if tok := c.Connect(); !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
			t.Fatalf("connect %s: %v", id, tok.Error())
		}
		// The device answers every command on its reply topic with the
		// command's id (MQTT 3.1.1: no correlation data).
		tok := c.Subscribe("fleet/"+id+"/cmd", 1, func(c paho.Client, m paho.Message) {
			var cmd struct {
				ID string `json:"id"`
			}
			json.Unmarshal(m.Payload(), &cmd)
			mu.Lock()
			received[id] = append(received[id], string(m.Payload()))
			mu.Unlock()
			c.Publish("fleet/"+id+"/cmd/reply", 1, false, fmt.Sprintf(`{"id":%q,"ok":true}`, cmd.ID))
		})
		if !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribe %s: %v", id, tok.Error())
		}
		return c
	}
	publish := func(c paho.Client, id string) {
		if tok := c.Publish("fleet/"+id+"/temp", 1, false, "21.5"); !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", id, tok.Error())
		}
	}
	ids := []string{"van-1", "van-2", "van-3"}
	clients := map[string]paho.Client{}
	for _, id := range ids {
		clients[id] = connect(id)
		publish(clients[id], id)
		b.waitJS(t, id+" in the table", fmt.Sprintf(`!!document.querySelector('#devices tr[data-key="device-%s"] [data-state="connected"]')`, id), 30*time.Second)
	}
	defer func() {
		for _, c := range clients {
			c.Disconnect(10)
		}
	}()

	lastSeen := `document.querySelector('#devices tr[data-key="device-van-1"] [data-last-seen]').dataset.lastSeen`
	first, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](lastSeen))
	if err != nil {
		t.Fatal(err)
	}
	// Keep van-1 and van-2 publishing; van-3 goes away.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(300 * time.Millisecond):
			}
			for _, id := range ids[:2] {
				clients[id].Publish("fleet/"+id+"/temp", 1, false, "22.0")
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	b.waitJS(t, "van-1's last seen advancing", fmt.Sprintf(`Date.parse(%s) > Date.parse(%q)`, lastSeen, first), 30*time.Second)

	clients["van-3"].Disconnect(10)
	delete(clients, "van-3")
	b.waitJS(t, "van-3 offline", `!!document.querySelector('#devices tr[data-key="device-van-3"] [data-state="offline"]')`, 30*time.Second)
	b.run(t, "quiet for more than 3 s", 10*time.Second, chromedp.SetValue("#device-quiet", "0.05"))
	b.waitJS(t, "only van-3 quiet",
		`!!document.querySelector('#devices tr[data-key="device-van-3"]') && !document.querySelector('#devices tr[data-key="device-van-1"]') && !document.querySelector('#devices tr[data-key="device-van-2"]')`,
		30*time.Second)
	b.screenshot(t, "console-edge-quiet.png")
	b.run(t, "clear the quiet filter", 10*time.Second, chromedp.SetValue("#device-quiet", ""))

	b.run(t, "open van-1's page and send a command", 30*time.Second,
		chromedp.Click(`#devices tr[data-key="device-van-1"] a`),
		chromedp.WaitVisible("#command-form"),
		chromedp.SetValue("#command-name", "reboot"),
		chromedp.SetValue("#command-payload", `{"delay_s":1}`),
		chromedp.SetValue("#command-ttl", "600"),
		chromedp.SetValue("#command-user", "ops"),
		chromedp.SetValue("#command-password", "ops-secret"),
		chromedp.Click(`#command-form button[type="submit"]`),
	)
	b.waitJS(t, "the command sent", `(document.getElementById('command-result').dataset.command || '').startsWith('cmd-')`, 30*time.Second)
	id, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.getElementById('command-result').dataset.command`))
	if err != nil {
		t.Fatal(err)
	}
	b.waitJS(t, "the command acked on the device's page",
		fmt.Sprintf(`!!document.querySelector('#device-commands tr[data-key="cmd-%s"] [data-status="acked"]')`, id), 60*time.Second)
	mu.Lock()
	got := received["van-1"]
	mu.Unlock()
	if len(got) != 1 || !strings.Contains(got[0], id) || !strings.Contains(got[0], `"name":"reboot"`) {
		t.Errorf("van-1 received %q, want one command %s named reboot", got, id)
	}
	b.screenshot(t, "console-edge-device.png")
}
