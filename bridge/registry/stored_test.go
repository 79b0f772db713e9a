package registry

import (
	"bytes"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// fullDevice has every field of a stored device set.
func fullDevice() Device {
	at := time.Unix(1700000000, 123456789)
	return Device{
		ID: "c-1", Fleet: "cars", ClientID: "c-1", Username: "u1", CertIdentity: "CN=c-1", Protocol: 5,
		FirstSeen: at, LastSeen: at.Add(time.Minute), Connected: true, Persistent: true,
		Subscriptions: []string{"cars/c-1/cmd", "cars/+/all"},
		Messages:      Counts{Telemetry: 12, Alarm: 3}, Bytes: Counts{Telemetry: 1 << 40, Alarm: 7},
		LastAlarm: &Alarm{Topic: "cars/c-1/alarm/fire", At: at.Add(time.Second)},
		Commands:  Commands{Pending: 1, Delivered: 2, Acked: 3, Expired: 4, Rejected: 5},
		Recent: []CommandState{
			{ID: "k2", Name: "unlock", Status: StatusDelivered, At: at.Add(2 * time.Second)},
			{ID: "k1", Status: StatusRejected, Reason: "no topic", At: at},
		},
	}
}

// sameDevice compares devices with their times as instants.
func sameDevice(t *testing.T, got, want Device) {
	t.Helper()
	norm := func(d Device) Device {
		d.FirstSeen, d.LastSeen = fromNano(unixNano(d.FirstSeen)), fromNano(unixNano(d.LastSeen))
		if d.LastAlarm != nil {
			a := *d.LastAlarm
			a.At = fromNano(unixNano(a.At))
			d.LastAlarm = &a
		}
		d.Recent = append([]CommandState(nil), d.Recent...)
		for i := range d.Recent {
			d.Recent[i].At = fromNano(unixNano(d.Recent[i].At))
		}
		return d
	}
	if g, w := norm(got), norm(want); !reflect.DeepEqual(g, w) {
		t.Fatalf("got %+v, want %+v", g, w)
	}
}

// A device's record decodes to the device, a bare one as much as one with
// every field; it is binary and smaller than the JSON it replaced.
func TestStoredRoundTrip(t *testing.T) {
	for _, want := range []Device{fullDevice(), {ID: "d-1", Fleet: "f", FirstSeen: time.Unix(5, 0), LastSeen: time.Unix(6, 0), Messages: Counts{Telemetry: 1}}} {
		v := appendEntry(nil, newEntry(want))
		if v[0] != storedV1 {
			t.Fatalf("got first byte %#x, want %#x", v[0], storedV1)
		}
		got, err := decodeDevice(want.ID, v)
		if err != nil {
			t.Fatal(err)
		}
		sameDevice(t, got, want)
	}
	if n := len(appendEntry(nil, newEntry(Device{ID: "d-00001", Fleet: "cars", FirstSeen: time.Unix(1700000000, 0), LastSeen: time.Unix(1700000100, 0), Messages: Counts{Telemetry: 100}, Bytes: Counts{Telemetry: 25600}}))); n > 64 {
		t.Fatalf("a device that only published: got %d bytes, want at most 64", n)
	}
}

// Records written as JSON by earlier versions still load.
func TestStoredJSONStillRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "devices.db")
	r := open(t, path, 100)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	old := []byte(`{"id":"c-1","fleet":"cars","username":"u1","protocol":4,"first_seen":"2023-11-14T22:13:20Z","last_seen":"2023-11-14T22:14:20Z","connected":true,"persistent":true,"subscriptions":["cars/c-1/cmd"],"messages":{"telemetry":12,"alarm":3},"bytes":{"telemetry":40,"alarm":7},"last_alarm":{"topic":"cars/c-1/alarm/fire","at":"2023-11-14T22:13:21Z"},"commands":{"pending":0,"delivered":2,"acked":1,"expired":0,"rejected":0}}`)
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucketDevices).Put([]byte("c-1"), old) })
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	r = open(t, path, 100)
	defer r.Close()
	d, ok := r.Get("c-1")
	if !ok {
		t.Fatal("got no c-1, want the device of the JSON record")
	}
	at := time.Unix(1700000000, 0)
	want := Device{ID: "c-1", Fleet: "cars", Username: "u1", Protocol: 4, FirstSeen: at, LastSeen: at.Add(time.Minute),
		Persistent: true, Subscriptions: []string{"cars/c-1/cmd"}, Messages: Counts{Telemetry: 12, Alarm: 3}, Bytes: Counts{Telemetry: 40, Alarm: 7},
		LastAlarm: &Alarm{Topic: "cars/c-1/alarm/fire", At: at.Add(time.Second)}, Commands: Commands{Delivered: 2, Acked: 1}}
	sameDevice(t, d, want)
}

// Malformed records are refused, not misread.
func TestStoredMalformed(t *testing.T) {
	v := appendEntry(nil, newEntry(fullDevice()))
	for _, bad := range [][]byte{nil, {storedV1}, {0x00}, v[:len(v)-1], append(bytes.Clone(v), 0), append([]byte{storedV1, 0x80}, v[2:]...)} {
		if d, err := decodeDevice("c-1", bad); err == nil {
			t.Errorf("decode %x: got %+v, want an error", bad, d)
		}
	}
}
