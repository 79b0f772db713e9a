package edge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fluxo-io/fluxo/bridge/registry"
)

// The command API, on the edge's HTTP port:
//
//	POST /api/devices/{id}/commands   CommandRequest → 202 CommandAccepted
//
// It takes Basic auth with a user of the edge's users file that has
// admin: true; 401 without credentials or with wrong ones, 403 for a user
// who is not an admin or when the edge has no users file. The command is
// produced to the core's commands topic (the downlink's client: its
// brokers, TLS and SASL) with a new id, and from there handled like any
// command: its statuses (sent, queued, delivered, acked, expired,
// rejected) show on /api/devices/{id} under recent_commands.

// CommandRequest is the body of POST /api/devices/{id}/commands.
type CommandRequest struct {
	// Name is what the command does ("reboot"); required.
	Name string `json:"name"`
	// Payload is any JSON value for the device; optional.
	Payload json.RawMessage `json:"payload,omitempty"`
	// ExpiresMS is the command's lifetime in milliseconds from now; 0:
	// the downlink's TTL.
	ExpiresMS int64 `json:"expires_ms,omitempty"`
}

// CommandAccepted answers a command produced to the core.
type CommandAccepted struct {
	ID      string          `json:"id"`
	Device  string          `json:"device"`
	Status  registry.Status `json:"status"` // sent
	Expires time.Time       `json:"expires,omitzero"`
}

// CommandValue is the record value a command sent through the API
// carries: the device reads the id from it to answer (MQTT 3.1.1 devices
// answer on {fleet}/{device}/cmd/reply with {"id": ...}).
type CommandValue struct {
	ID      string          `json:"id"`
	Name    string          `json:"name"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// Headers of a command sent through the API.
const (
	HeaderCommandName = "command.name"
	HeaderCommandBy   = "command.by" // the admin who sent it
)

// maxCommandBody caps a command request.
const maxCommandBody = 64 << 10

// NewCommandID returns a new random command id: cmd- and 32 hex digits.
func NewCommandID() string {
	var b [16]byte
	rand.Read(b[:])
	return "cmd-" + hex.EncodeToString(b[:])
}

func (n *Node) handleCommand(w http.ResponseWriter, req *http.Request) {
	users := n.edge.users.Load()
	if users == nil {
		httpError(w, http.StatusForbidden, "edge: commands need an admin user in the users file, and this edge has no users file")
		return
	}
	name, pass, ok := req.BasicAuth()
	if !ok {
		w.Header().Set("WWW-Authenticate", `Basic realm="fluxo edge", charset="UTF-8"`)
		httpError(w, http.StatusUnauthorized, "edge: commands need Basic auth with an admin user of the users file")
		return
	}
	u, ok := users.Authenticate(name, []byte(pass))
	if !ok {
		w.Header().Set("WWW-Authenticate", `Basic realm="fluxo edge", charset="UTF-8"`)
		httpError(w, http.StatusUnauthorized, "edge: wrong username or password")
		return
	}
	if !u.Admin {
		httpError(w, http.StatusForbidden, fmt.Sprintf("edge: user %q is not an admin (admin: true in the users file)", name))
		return
	}
	device := req.PathValue("id")
	if device == "" || strings.ContainsAny(device, "/+#") {
		httpError(w, http.StatusBadRequest, fmt.Sprintf("edge: device id %q: want one MQTT topic level", device))
		return
	}
	var body CommandRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, req.Body, maxCommandBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		httpError(w, http.StatusBadRequest, "edge: command: "+err.Error())
		return
	}
	switch {
	case strings.TrimSpace(body.Name) == "":
		httpError(w, http.StatusBadRequest, "edge: command: name is required")
		return
	case body.ExpiresMS < 0:
		httpError(w, http.StatusBadRequest, "edge: command: expires_ms must not be negative")
		return
	}
	dl := n.fwd.Downlink()
	if dl == nil {
		httpError(w, http.StatusServiceUnavailable, "edge: this edge has no downlink: commands are off")
		return
	}
	now := time.Now()
	acc := CommandAccepted{ID: NewCommandID(), Device: device, Status: registry.StatusSent}
	if body.ExpiresMS > 0 {
		acc.Expires = now.Add(time.Duration(body.ExpiresMS) * time.Millisecond).UTC()
	}
	value, err := json.Marshal(CommandValue{ID: acc.ID, Name: body.Name, Payload: body.Payload})
	if err != nil {
		httpError(w, http.StatusBadRequest, "edge: command: "+err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(req.Context(), 15*time.Second)
	defer cancel()
	err = dl.Send(ctx, device, acc.ID, value, acc.Expires,
		kgo.RecordHeader{Key: HeaderCommandName, Value: []byte(body.Name)},
		kgo.RecordHeader{Key: HeaderCommandBy, Value: []byte(name)})
	if err != nil {
		code := http.StatusBadGateway
		if errors.Is(err, context.DeadlineExceeded) {
			code = http.StatusGatewayTimeout
		}
		n.log.Warn().Err(err).Str("device", device).Msg("cannot send a command")
		httpError(w, code, err.Error())
		return
	}
	if n.devs != nil {
		n.devs.Track(device, registry.CommandState{ID: acc.ID, Name: body.Name, Status: registry.StatusSent, At: now})
	}
	n.log.Info().Str("device", device).Str("command", acc.ID).Str("name", body.Name).Str("by", name).Msg("command sent")
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusAccepted)
	json.NewEncoder(w).Encode(acc)
}

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	fmt.Fprintln(w, msg)
}
