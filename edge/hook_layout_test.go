package edge

import (
	"reflect"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/fluxo-io/fluxo/bridge/route"
)

// publish views mochi's user properties as route.Property values without
// copying them (unsafe.Slice): that is sound only while the two structs
// have the same fields, types and offsets. A mochi upgrade that changes
// packets.UserProperty fails here, not in production.
func TestUserPropertyLayout(t *testing.T) {
	a, b := reflect.TypeFor[packets.UserProperty](), reflect.TypeFor[route.Property]()
	if a.Size() != b.Size() || a.NumField() != b.NumField() {
		t.Fatalf("got %v (%d bytes, %d fields) and %v (%d bytes, %d fields), want the same layout",
			a, a.Size(), a.NumField(), b, b.Size(), b.NumField())
	}
	for i := range a.NumField() {
		fa, fb := a.Field(i), b.Field(i)
		if fa.Name != fb.Name || fa.Type != fb.Type || fa.Offset != fb.Offset {
			t.Fatalf("field %d: got %s %v @%d and %s %v @%d, want the same", i, fa.Name, fa.Type, fa.Offset, fb.Name, fb.Type, fb.Offset)
		}
	}
}
