package registry

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/fluxo-io/fluxo/bridge/spool"
)

func open(t *testing.T, path string, max int) *Registry {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Path, cfg.MaxDevices = path, max
	r, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestEvictionIsCountedAndLeastRecentGoes(t *testing.T) {
	r := open(t, "", 3)
	defer r.Close()
	t0 := time.Unix(1700000000, 0)
	for i := 0; i < 3; i++ {
		r.Published(Publish{Device: fmt.Sprintf("d%d", i), Fleet: "f", At: t0.Add(time.Duration(i) * time.Second)})
	}
	r.Published(Publish{Device: "d0", At: t0.Add(10 * time.Second)}) // d1 is now the least recent
	r.Published(Publish{Device: "d9", At: t0.Add(11 * time.Second)})
	if got := r.Len(); got != 3 {
		t.Fatalf("got %d devices, want 3", got)
	}
	if _, ok := r.Get("d1"); ok {
		t.Errorf("got d1 kept, want it evicted")
	}
	if _, ok := r.Get("d0"); !ok {
		t.Errorf("got d0 evicted, want it kept (seen recently)")
	}
	if got := r.Stats().Evicted; got != 1 {
		t.Errorf("got %d evicted, want 1", got)
	}
}

func TestPersistedAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "devices.db")
	r := open(t, path, 100)
	at := time.UnixMilli(1700000000123)
	r.Connected(Conn{ClientID: "c-1", Username: "u1", Protocol: 5, Persistent: true, At: at})
	r.Subscribed("c-1", []string{"cars/c-1/cmd"}, at)
	r.Published(Publish{Device: "c-1", Fleet: "cars", Topic: "cars/c-1/alarm/fire", Lane: spool.Alarm, Bytes: 7, At: at})
	r.Published(Publish{Device: "c-1", Fleet: "cars", Topic: "cars/c-1/gps", Lane: spool.Telemetry, Bytes: 3, At: at})
	if err := r.Enqueue(Command{ID: "k1", Device: "ghost", Payload: []byte("x"), Queued: at, Deadline: at.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := r.Expect(Expectation{ID: "k2", Device: "c-1", ResponseTopic: "r/1", CorrelationData: []byte{1, 2}, Deadline: at.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	r = open(t, path, 100)
	defer r.Close()
	d, ok := r.Get("c-1")
	if !ok {
		t.Fatal("got no c-1 after reopening, want it")
	}
	if d.Connected || !d.Persistent || d.Fleet != "cars" || d.Username != "u1" || len(d.Subscriptions) != 1 {
		t.Errorf("got %+v, want disconnected, persistent, fleet cars, user u1, one subscription", d)
	}
	if d.Messages.Alarm != 1 || d.Messages.Telemetry != 1 || d.Bytes.Total() != 10 {
		t.Errorf("got messages %+v bytes %+v, want 1+1 messages and 10 bytes", d.Messages, d.Bytes)
	}
	if d.LastAlarm == nil || d.LastAlarm.Topic != "cars/c-1/alarm/fire" {
		t.Errorf("got last alarm %+v, want cars/c-1/alarm/fire", d.LastAlarm)
	}
	if p := r.Pending(); len(p) != 1 || p[0].ID != "k1" || string(p[0].Payload) != "x" {
		t.Errorf("got pending %+v, want command k1", p)
	}
	if !r.Responded("c-1", "r/1", []byte{1, 2}, []byte("ok"), at) {
		t.Errorf("got the answer unmatched after reopening, want it matched")
	}
	a := <-r.Answers()
	if a.ID != "k2" || string(a.Payload) != "ok" {
		t.Errorf("got answer %+v, want k2 with ok", a)
	}
}

func TestQueueBounded(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxPending, cfg.MaxPendingBytes = 2, 100
	r, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for i, want := range []error{nil, nil, ErrQueueFull} {
		err := r.Enqueue(Command{ID: fmt.Sprint(i), Device: "d", Payload: []byte("p")})
		if err != want {
			t.Errorf("enqueue %d: got %v, want %v", i, err, want)
		}
	}
	if err := r.Enqueue(Command{ID: "big", Device: "e", Payload: make([]byte, 200)}); err != ErrQueueFull {
		t.Errorf("got %v for a command past the byte cap, want ErrQueueFull", err)
	}
	if err := r.Dequeue("d", "0"); err != nil {
		t.Fatal(err)
	}
	if err := r.Enqueue(Command{ID: "3", Device: "d", Payload: []byte("p")}); err != nil {
		t.Errorf("got %v after a dequeue, want room", err)
	}
}

func TestListFilterSortPage(t *testing.T) {
	r := open(t, "", 100)
	defer r.Close()
	now := time.Unix(1700000000, 0)
	for i := 0; i < 10; i++ {
		fleet := "cars"
		if i%2 == 1 {
			fleet = "sensors"
		}
		r.Published(Publish{Device: fmt.Sprintf("d%02d", i), Fleet: fleet, At: now.Add(-time.Duration(i) * time.Minute)})
	}
	tests := []struct {
		query string
		total int
		ids   []string
	}{
		{"", 10, []string{"d00", "d01", "d02"}},
		{"fleet=sensors", 5, []string{"d01", "d03", "d05"}},
		{"quiet=5m&sort=id", 4, []string{"d06", "d07", "d08"}},
		{"sort=-last_seen&limit=2&offset=1", 10, []string{"d08", "d07"}},
		{"q=d0&limit=3&offset=9", 10, []string{"d09"}},
	}
	for _, tt := range tests {
		v, _ := url.ParseQuery(tt.query)
		q, err := ParseQuery(v)
		if err != nil {
			t.Fatal(err)
		}
		if tt.query == "" || q.Limit == DefaultLimit {
			q.Limit = 3
		}
		p := r.List(q, now)
		var ids []string
		for _, d := range p.Devices {
			ids = append(ids, d.ID)
		}
		if p.Total != tt.total || fmt.Sprint(ids) != fmt.Sprint(tt.ids) {
			t.Errorf("%q: got total %d ids %v, want %d %v", tt.query, p.Total, ids, tt.total, tt.ids)
		}
	}
}

func TestHandler(t *testing.T) {
	r := open(t, "", 100)
	defer r.Close()
	r.Connected(Conn{ClientID: "a/b", At: time.Now()})
	srv := httptest.NewServer(r.Handler())
	defer srv.Close()
	tests := []struct {
		path string
		code int
	}{
		{"/api/devices", 200},
		{"/api/devices?sort=bogus", 400},
		{"/api/devices/" + url.PathEscape("a/b"), 200},
		{"/api/devices/nobody", 404},
	}
	for _, tt := range tests {
		resp, err := http.Get(srv.URL + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != tt.code {
			t.Errorf("%s: got %d, want %d", tt.path, resp.StatusCode, tt.code)
		}
		if tt.code == 200 && tt.path == "/api/devices" && body["total"] != float64(1) {
			t.Errorf("%s: got total %v, want 1", tt.path, body["total"])
		}
	}
}

// FuzzParseQuery checks that ParseQuery never panics and that what it
// accepts is within bounds: a limit of at most MaxLimit, no negative
// offset, a known sort key.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{"", "fleet=cars&q=x&sort=-id&limit=5&offset=2&quiet=5m&connected=true", "limit=-1", "quiet=x", "sort=messages&limit=999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := url.ParseQuery(s)
		if err != nil {
			return
		}
		q, err := ParseQuery(v)
		if err != nil {
			return
		}
		if q.Limit > MaxLimit || q.Limit < 0 || q.Offset < 0 {
			t.Errorf("got limit %d offset %d, want 0..%d and >= 0", q.Limit, q.Offset, MaxLimit)
		}
	})
}

func BenchmarkPublished(b *testing.B) {
	r := open(&testing.T{}, filepath.Join(b.TempDir(), "d.db"), DefaultMaxDevices)
	defer r.Close()
	devs := make([]string, 10000)
	for i := range devs {
		devs[i] = fmt.Sprintf("dev-%05d", i)
	}
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r.Published(Publish{Device: devs[i%len(devs)], Fleet: "f", Topic: "f/x/t", Bytes: 100, At: now})
	}
}

// TestTopKMatchesSort: the bounded heap List uses for a first page gives
// the same devices in the same order as sorting them all.
func TestTopKMatchesSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	less := func(a, b listKey) bool {
		if a.v != b.v {
			return a.v > b.v
		}
		return a.id < b.id
	}
	for _, n := range []int{0, 1, 7, 100, 1000} {
		for _, k := range []int{0, 1, 5, 100, n} {
			if k > n {
				continue
			}
			xs := make([]listKey, n)
			for i := range xs {
				xs[i] = listKey{id: fmt.Sprintf("d%04d", i), v: int64(rng.IntN(50))}
			}
			want := append([]listKey(nil), xs...)
			sort.Slice(want, func(i, j int) bool { return less(want[i], want[j]) })
			got := topK(xs, k, less)
			if len(got) != k {
				t.Fatalf("n %d k %d: got %d keys, want %d", n, k, len(got), k)
			}
			for i := range got {
				if got[i].id != want[i].id {
					t.Fatalf("n %d k %d: key %d: got %s, want %s", n, k, i, got[i].id, want[i].id)
				}
			}
		}
	}
}

func TestTrackKeepsLatestStatusNewestFirst(t *testing.T) {
	r, err := Open(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	now := time.Now()
	r.Track("d1", CommandState{ID: "c1", Name: "reboot", Status: StatusSent, At: now})
	r.Track("d1", CommandState{ID: "c1", Status: StatusAcked, At: now})
	r.Track("d1", CommandState{ID: "c1", Status: StatusDelivered, At: now}) // late: does not hide acked
	for i := 0; i < MaxRecentCommands+3; i++ {
		r.Track("d1", CommandState{ID: fmt.Sprintf("n%d", i), Status: StatusQueued, At: now})
	}
	d, _ := r.Get("d1")
	if len(d.Recent) != MaxRecentCommands {
		t.Fatalf("got %d recent commands, want %d", len(d.Recent), MaxRecentCommands)
	}
	if got, want := d.Recent[0].ID, fmt.Sprintf("n%d", MaxRecentCommands+2); got != want {
		t.Errorf("newest: got %s, want %s", got, want)
	}
	r.Track("d2", CommandState{ID: "c1", Name: "reboot", Status: StatusSent, At: now})
	r.Track("d2", CommandState{ID: "c1", Status: StatusAcked, At: now})
	r.Track("d2", CommandState{ID: "c1", Status: StatusDelivered, At: now})
	d, _ = r.Get("d2")
	if len(d.Recent) != 1 || d.Recent[0].Status != StatusAcked || d.Recent[0].Name != "reboot" {
		t.Errorf("got %+v, want c1 acked, named reboot", d.Recent)
	}
}

func TestRepliedMatchesMQTT311Answer(t *testing.T) {
	r, err := Open(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Expect(Expectation{ID: "cmd-7", Device: "d1", ResponseTopic: "f/d1/cmd/reply", CorrelationData: []byte("cmd-7"), Deadline: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		topic, payload string
		want           bool
	}{
		{"f/d1/cmd/reply", `{"id":"cmd-8","ok":true}`, false},
		{"f/d1/cmd/other", `{"id":"cmd-7"}`, false},
		{"f/d1/cmd/reply", `not json`, false},
		{"f/d2/cmd/reply", `{"id":"cmd-7"}`, false},
		{"f/d1/cmd/reply", `{"command_id":"cmd-7","ok":true}`, true},
	} {
		if got := r.Replied("d1", tc.topic, []byte(tc.payload), time.Now()); got != tc.want {
			t.Errorf("%s %s: got %v, want %v", tc.topic, tc.payload, got, tc.want)
		}
	}
	a := <-r.Answers()
	if a.ID != "cmd-7" || string(a.Payload) != `{"command_id":"cmd-7","ok":true}` {
		t.Errorf("got answer %+v, want cmd-7 with its payload", a)
	}
}

// The LRU list stays sorted by last seen through touches with times out
// of order (and equal), evictions and a reload, and List by last seen
// read off it (listRecent) answers as the scan of every device does
// (listScan), for every offset and limit, both directions.
func TestListRecentMatchesScan(t *testing.T) {
	path := filepath.Join(t.TempDir(), "devices.db")
	r := open(t, path, 50)
	rng := rand.New(rand.NewPCG(7, 9))
	t0 := time.Unix(1700000000, 0)
	check := func(stage string) {
		t.Helper()
		r.mu.Lock()
		n, prev := 0, int64(1<<62)
		for e := r.lru.root.next; e != &r.lru.root; e = e.next {
			if e.last > prev {
				r.mu.Unlock()
				t.Fatalf("%s: got %s (last %d) behind one seen at %d, want the list sorted by last seen", stage, e.id, e.last, prev)
			}
			prev = e.last
			n++
		}
		r.mu.Unlock()
		if n != r.Len() {
			t.Fatalf("%s: got %d entries in the list, want %d", stage, n, r.Len())
		}
		for _, sortBy := range []string{"", "last_seen", "-last_seen"} {
			for _, q := range []Query{{Limit: 1}, {Limit: 7}, {Limit: 100}, {Offset: 3, Limit: 5}, {Offset: 45, Limit: 10}, {Offset: 60, Limit: 10}} {
				q.Sort = sortBy
				key, desc := "last_seen", len(sortBy) > 0 && sortBy[0] == '-'
				got, want := r.listRecent(q, desc), r.listScan(q, key, desc, t0)
				gotIDs, wantIDs := pageIDs(got), pageIDs(want)
				if fmt.Sprint(gotIDs) != fmt.Sprint(wantIDs) || got.Total != want.Total {
					t.Fatalf("%s: sort %q offset %d limit %d: got %v of %d, want %v of %d", stage, sortBy, q.Offset, q.Limit, gotIDs, got.Total, wantIDs, want.Total)
				}
			}
		}
	}
	for i := range 2000 {
		id := fmt.Sprintf("d%02d", rng.IntN(80))
		// Mostly forward in time, sometimes back, often the same second.
		at := t0.Add(time.Duration(i/3)*time.Second - time.Duration(rng.IntN(5))*time.Second)
		switch rng.IntN(3) {
		case 0:
			r.Published(Publish{Device: id, Fleet: "f", Topic: "f/" + id + "/t", Bytes: 1, At: at})
		case 1:
			r.Connected(Conn{ClientID: id, Protocol: 4, At: at})
		default:
			r.Subscribed(id, []string{"f/" + id + "/cmd"}, at)
		}
		if i%250 == 0 {
			check(fmt.Sprintf("after %d touches", i))
		}
	}
	check("at the end")
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	r = open(t, path, 50)
	defer r.Close()
	check("after a reload")
}

func pageIDs(p Page) []string {
	ids := make([]string, len(p.Devices))
	for i, d := range p.Devices {
		ids[i] = d.ID
	}
	return ids
}
