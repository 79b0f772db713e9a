package registry

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Query selects and orders devices for List.
type Query struct {
	Fleet string // only this fleet
	Q     string // substring of the id, client id, username or certificate identity
	// Sort is last_seen (most recent first; the default), first_seen
	// (most recent first), id, or messages (most first). A leading "-"
	// reverses it.
	Sort   string
	Limit  int // default 100, at most 10000
	Offset int
	// Quiet, when positive, keeps only the devices not seen for longer:
	// "which devices went quiet".
	Quiet time.Duration
	// Connected, when set, keeps only the connected ("true") or
	// disconnected ("false") devices.
	Connected *bool
}

// Page is a page of List's answer.
type Page struct {
	Total   int      `json:"total"` // devices matching, all pages
	Offset  int      `json:"offset"`
	Limit   int      `json:"limit"`
	Devices []Device `json:"devices"`
	Stats   Stats    `json:"registry"`
}

// Query limits.
const (
	DefaultLimit = 100
	MaxLimit     = 10000
)

// ParseQuery reads a Query from URL parameters: fleet, q, sort, limit,
// offset, quiet (a Go duration: 5m) and connected (true or false).
func ParseQuery(v url.Values) (Query, error) {
	q := Query{Fleet: v.Get("fleet"), Q: v.Get("q"), Sort: v.Get("sort"), Limit: DefaultLimit}
	var err error
	if s := v.Get("limit"); s != "" {
		if q.Limit, err = strconv.Atoi(s); err != nil || q.Limit < 0 {
			return q, fmt.Errorf("registry: limit %q: want a count", s)
		}
		q.Limit = min(q.Limit, MaxLimit)
	}
	if s := v.Get("offset"); s != "" {
		if q.Offset, err = strconv.Atoi(s); err != nil || q.Offset < 0 {
			return q, fmt.Errorf("registry: offset %q: want a count", s)
		}
	}
	if s := v.Get("quiet"); s != "" {
		if q.Quiet, err = time.ParseDuration(s); err != nil {
			return q, fmt.Errorf("registry: quiet %q: want a duration such as 5m", s)
		}
	}
	if s := v.Get("connected"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return q, fmt.Errorf("registry: connected %q: want true or false", s)
		}
		q.Connected = &b
	}
	switch strings.TrimPrefix(q.Sort, "-") {
	case "", "last_seen", "first_seen", "id", "messages":
	default:
		return q, fmt.Errorf("registry: sort %q: want last_seen, first_seen, id or messages", q.Sort)
	}
	return q, nil
}

// List returns the devices matching q, sorted and paged.
//
// Under the lock it only filters and copies each match's sort keys (a
// pointer and three numbers); it sorts outside it, and takes the lock
// again to copy the page's devices. Publishes wait for the copy, never for
// the sort. A device evicted between the two is left out of the page.
func (r *Registry) List(q Query, now time.Time) Page {
	if q.Limit == 0 && q.Offset == 0 {
		q.Limit = DefaultLimit
	}
	key, desc := strings.TrimPrefix(q.Sort, "-"), strings.HasPrefix(q.Sort, "-")
	if q.Fleet == "" && q.Q == "" && q.Quiet <= 0 && q.Connected == nil && key != "first_seen" && key != "messages" && key != "id" {
		return r.listRecent(q, desc)
	}
	return r.listScan(q, key, desc, now)
}

// listRecent is List by last seen without filters (the console's first
// page, polled): the LRU list is in that order, so the page is read off
// its front (its back for -last_seen) under one lock, without a look at
// every device. Entries seen at the same time as the page's last one
// are all taken, to order those ties by id as listScan does.
func (r *Registry) listRecent(q Query, desc bool) Page {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := Page{Total: len(r.m), Offset: q.Offset, Limit: q.Limit, Devices: []Device{}, Stats: r.statsLocked()}
	end := q.Offset + q.Limit
	if q.Offset >= len(r.m) || q.Limit <= 0 {
		return p
	}
	step := func(e *entry) *entry { return e.next }
	first := r.lru.root.next
	if desc {
		step = func(e *entry) *entry { return e.prev }
		first = r.lru.root.prev
	}
	keys := make([]listKey, 0, min(end, len(r.m)))
	for e := first; e != &r.lru.root; e = step(e) {
		if len(keys) >= end && e.last != keys[len(keys)-1].v {
			break
		}
		keys = append(keys, listKey{e: e, id: e.id, v: e.last})
	}
	// Already by last seen; ties by id (descending for -last_seen).
	sort.SliceStable(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.v != b.v {
			return a.v > b.v != desc
		}
		return a.id < b.id != desc
	})
	end = min(end, len(keys))
	for _, k := range keys[q.Offset:end] {
		p.Devices = append(p.Devices, k.e.device())
	}
	return p
}

// listScan is List in general: the sort keys of the matching devices are
// copied under the lock, the page is picked outside it, and the lock is
// taken again to copy the page.
func (r *Registry) listScan(q Query, key string, desc bool, now time.Time) Page {
	r.mu.Lock()
	match := make([]listKey, 0, len(r.m))
	for _, e := range r.m {
		if q.Fleet != "" && e.fleet != q.Fleet {
			continue
		}
		if q.Quiet > 0 && now.Sub(fromNano(e.last)) <= q.Quiet {
			continue
		}
		if q.Connected != nil && e.connected != *q.Connected {
			continue
		}
		if q.Q != "" && !strings.Contains(e.id, q.Q) &&
			(e.x == nil || !strings.Contains(e.x.clientID, q.Q) && !strings.Contains(e.x.username, q.Q) && !strings.Contains(e.x.certIdentity, q.Q)) {
			continue
		}
		k := listKey{e: e, id: e.id}
		switch key {
		case "first_seen":
			k.v = e.first
		case "messages":
			k.v = e.msgs.Total()
		case "id":
		default:
			k.v = e.last
		}
		match = append(match, k)
	}
	stats := r.statsLocked()
	r.mu.Unlock()

	p := Page{Total: len(match), Offset: q.Offset, Limit: q.Limit, Devices: []Device{}, Stats: stats}
	if q.Offset >= len(match) || q.Limit == 0 {
		return p
	}
	end := min(len(match), q.Offset+q.Limit)
	// Most first by value (ties by id), or by id; desc reverses.
	less := func(a, b listKey) bool {
		if key != "id" && a.v != b.v {
			return a.v > b.v
		}
		return a.id < b.id
	}
	if desc {
		less = func(a, b listKey) bool {
			if key != "id" && a.v != b.v {
				return a.v < b.v
			}
			return a.id > b.id
		}
	}
	page := topK(match, end, less)[q.Offset:]

	r.mu.Lock()
	for _, k := range page {
		if e, ok := r.m[k.id]; ok && e == k.e {
			p.Devices = append(p.Devices, e.device())
		}
	}
	r.mu.Unlock()
	return p
}

// listKey is what List sorts: a device's entry and its sort value.
type listKey struct {
	e  *entry
	id string
	v  int64
}

// topK returns the first k of xs in less's order, sorted; it reorders xs.
// With k much smaller than len(xs) it keeps a bounded heap (n log k)
// instead of sorting everything.
func topK(xs []listKey, k int, less func(a, b listKey) bool) []listKey {
	if k >= len(xs)/4 {
		sort.Slice(xs, func(i, j int) bool { return less(xs[i], xs[j]) })
		return xs[:k]
	}
	// A max-heap (by less) of the k best so far in xs[:k].
	h := xs[:k]
	down := func(i int) {
		for {
			l := 2*i + 1
			if l >= len(h) {
				return
			}
			m := l
			if r := l + 1; r < len(h) && less(h[l], h[r]) {
				m = r
			}
			if !less(h[i], h[m]) {
				return
			}
			h[i], h[m] = h[m], h[i]
			i = m
		}
	}
	for i := k/2 - 1; i >= 0; i-- {
		down(i)
	}
	for _, x := range xs[k:] {
		if k > 0 && less(x, h[0]) {
			h[0] = x
			down(0)
		}
	}
	sort.Slice(h, func(i, j int) bool { return less(h[i], h[j]) })
	return h
}

// DeviceView is one device as /api/devices/{id} shows it: the device and
// its queued commands.
type DeviceView struct {
	Device
	Queued []QueuedCommand `json:"queued_commands"`
}

// QueuedCommand is a command waiting for its device, without its payload.
type QueuedCommand struct {
	ID       string    `json:"id"`
	Bytes    int       `json:"bytes"`
	Queued   time.Time `json:"queued"`
	Deadline time.Time `json:"deadline"`
}

// View returns a device and its queued commands.
func (r *Registry) View(id string) (DeviceView, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.m[id]
	q := r.pending[id]
	if !ok && len(q) == 0 {
		return DeviceView{}, false
	}
	v := DeviceView{Queued: []QueuedCommand{}}
	if ok {
		v.Device = e.device()
	} else {
		v.Device = Device{ID: id}
	}
	for _, c := range q {
		v.Queued = append(v.Queued, QueuedCommand{ID: c.ID, Bytes: len(c.Payload), Queued: c.Queued, Deadline: c.Deadline})
	}
	return v, true
}

// Handler serves the registry as JSON:
//
//	GET /api/devices?fleet=&q=&sort=last_seen&limit=&offset=&quiet=5m&connected=
//	GET /api/devices/{id}
//
// Mount it on both "/api/devices" and "/api/devices/".
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		id := strings.TrimPrefix(strings.TrimPrefix(req.URL.Path, "/api/devices"), "/")
		if id == "" {
			q, err := ParseQuery(req.URL.Query())
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			writeJSON(w, r.List(q, time.Now()))
			return
		}
		if u, err := url.PathUnescape(id); err == nil {
			id = u
		}
		v, ok := r.View(id)
		if !ok {
			http.Error(w, "registry: no device "+strconv.Quote(id), http.StatusNotFound)
			return
		}
		writeJSON(w, v)
	})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	enc.Encode(v)
}
