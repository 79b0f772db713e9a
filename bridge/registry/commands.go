package registry

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"go.etcd.io/bbolt"
)

// Status is a command's state in its status record (topic command-acks).
type Status string

// Command statuses.
const (
	// StatusSent: produced to the core's commands topic by this edge (its
	// console or API); the downlink has not handled it yet.
	StatusSent Status = "sent"
	// StatusQueued: the device cannot take the command yet (never seen,
	// or its session has no subscription for it); it waits at the edge,
	// persisted, until the device subscribes or the command expires.
	StatusQueued Status = "queued"
	// StatusDelivered: handed to the device's session (online, or
	// offline and persistent: the MQTT server keeps it for the device).
	StatusDelivered Status = "delivered"
	// StatusAcked: the device answered on the command's response topic.
	StatusAcked Status = "acked"
	// StatusExpired: the command's expiry passed before delivery.
	StatusExpired Status = "expired"
	// StatusRejected: the command cannot be delivered (no topic can be
	// found for it, or the queue is full).
	StatusRejected Status = "rejected"
)

// Header is a record header of a command.
type Header struct {
	Key   string `json:"k"`
	Value []byte `json:"v"`
}

// Command is a command waiting at the edge for its device.
type Command struct {
	ID       string    `json:"id"`
	Device   string    `json:"device"`
	Topic    string    `json:"topic,omitempty"` // explicit MQTT topic, if the record named one
	Payload  []byte    `json:"payload"`
	Headers  []Header  `json:"headers,omitempty"`
	Queued   time.Time `json:"queued"`
	Deadline time.Time `json:"deadline"`
}

func (c *Command) size() int {
	n := len(c.Payload) + len(c.ID) + len(c.Topic)
	for _, h := range c.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

func pendingKey(device, id string) []byte { return []byte(device + "\x00" + id) }

// Enqueue stores a command for its device, on disk before it returns. It
// refuses with ErrQueueFull past the caps. A command already queued (same
// device and id, as after a redelivery) is not queued twice.
func (r *Registry) Enqueue(c Command) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, q := range r.pending[c.Device] {
		if q.ID == c.ID {
			return nil
		}
	}
	sz := int64(c.size())
	if r.pendN+1 > r.cfg.MaxPending || r.pendB+sz > r.cfg.MaxPendingBytes {
		return ErrQueueFull
	}
	if r.db != nil {
		b, err := json.Marshal(&c)
		if err != nil {
			return fmt.Errorf("registry: command %q: %w", c.ID, err)
		}
		if err := r.db.Update(func(tx *bbolt.Tx) error {
			return tx.Bucket(bucketPending).Put(pendingKey(c.Device, c.ID), b)
		}); err != nil {
			return fmt.Errorf("registry: cannot queue command %q: %w", c.ID, err)
		}
	}
	r.pending[c.Device] = append(r.pending[c.Device], c)
	r.pendN++
	r.pendB += sz
	return nil
}

// Pending returns the queued commands, by device, oldest first; the
// devices are sorted.
func (r *Registry) Pending() []Command {
	r.mu.Lock()
	defer r.mu.Unlock()
	devs := make([]string, 0, len(r.pending))
	for d := range r.pending {
		devs = append(devs, d)
	}
	sort.Strings(devs)
	var out []Command
	for _, d := range devs {
		out = append(out, r.pending[d]...)
	}
	return out
}

// Dequeue removes a queued command (once its status is written).
func (r *Registry) Dequeue(device, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	q := r.pending[device]
	for i, c := range q {
		if c.ID != id {
			continue
		}
		if r.db != nil {
			if err := r.db.Update(func(tx *bbolt.Tx) error {
				return tx.Bucket(bucketPending).Delete(pendingKey(device, id))
			}); err != nil {
				return fmt.Errorf("registry: cannot dequeue command %q: %w", id, err)
			}
		}
		q = append(q[:i:i], q[i+1:]...)
		if len(q) == 0 {
			delete(r.pending, device)
		} else {
			r.pending[device] = q
		}
		r.pendN--
		r.pendB -= int64(c.size())
		return nil
	}
	return nil
}

// Expectation is a command whose answer the edge waits for: a publish on
// ResponseTopic carrying CorrelationData.
type Expectation struct {
	ID              string    `json:"id"`
	Device          string    `json:"device"`
	ResponseTopic   string    `json:"response_topic"`
	CorrelationData []byte    `json:"correlation_data"`
	Deadline        time.Time `json:"deadline"`
}

// Answer is a device's response to a command.
type Answer struct {
	Expectation
	Client  string // the MQTT client that answered
	Payload []byte
	At      time.Time
}

func replyKey(topic string, corr []byte) string { return topic + "\x00" + string(corr) }

// addExpect indexes x. r.mu held (or during load).
func (r *Registry) addExpect(x Expectation) {
	if old, ok := r.expect[x.ID]; ok {
		delete(r.byReply, replyKey(old.ResponseTopic, old.CorrelationData))
	}
	r.expect[x.ID] = x
	r.byReply[replyKey(x.ResponseTopic, x.CorrelationData)] = x.ID
	r.expecting.Store(int64(len(r.expect)))
}

// Expect records that a command waits for an answer, on disk before it
// returns. It is bounded by Config.MaxPending: past it, the oldest
// deadline is forgotten.
func (r *Registry) Expect(x Expectation) error {
	if r.db != nil {
		b, err := json.Marshal(&x)
		if err != nil {
			return fmt.Errorf("registry: expectation %q: %w", x.ID, err)
		}
		if err := r.db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucketExpect).Put([]byte(x.ID), b) }); err != nil {
			return fmt.Errorf("registry: cannot record expectation %q: %w", x.ID, err)
		}
	}
	r.mu.Lock()
	r.addExpect(x)
	var drop []string
	for len(r.expect) > r.cfg.MaxPending {
		var oldest Expectation
		for _, e := range r.expect {
			if oldest.ID == "" || e.Deadline.Before(oldest.Deadline) {
				oldest = e
			}
		}
		r.forgetLocked(oldest.ID)
		drop = append(drop, oldest.ID)
	}
	r.mu.Unlock()
	return r.deleteExpect(drop...)
}

func (r *Registry) forgetLocked(id string) {
	x, ok := r.expect[id]
	if !ok {
		return
	}
	delete(r.expect, id)
	delete(r.byReply, replyKey(x.ResponseTopic, x.CorrelationData))
	r.expecting.Store(int64(len(r.expect)))
}

func (r *Registry) deleteExpect(ids ...string) error {
	if r.db == nil || len(ids) == 0 {
		return nil
	}
	return r.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketExpect)
		for _, id := range ids {
			if err := b.Delete([]byte(id)); err != nil {
				return err
			}
		}
		return nil
	})
}

// Forget drops an expectation (answered, or past its deadline).
func (r *Registry) Forget(id string) error {
	r.mu.Lock()
	r.forgetLocked(id)
	r.mu.Unlock()
	return r.deleteExpect(id)
}

// Expired returns the expectations whose deadline is before now.
func (r *Registry) Expired(now time.Time) []Expectation {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Expectation
	for _, x := range r.expect {
		if x.Deadline.Before(now) {
			out = append(out, x)
		}
	}
	return out
}

// Responded looks a publish up among the expected answers: when topic
// and correlation data match a command's, the answer is handed to the
// downlink (Answers) and Responded reports true. It costs one atomic load
// while no answer is expected. It never blocks: when the downlink is
// behind by more than 1024 answers, the answer is counted as dropped (the
// device's publish still goes to the core by the routing rules).
func (r *Registry) Responded(client, topic string, corr, payload []byte, at time.Time) bool {
	if r.expecting.Load() == 0 || corr == nil {
		return false
	}
	r.mu.Lock()
	id, ok := r.byReply[replyKey(topic, corr)]
	var x Expectation
	if ok {
		x = r.expect[id]
	}
	r.mu.Unlock()
	if !ok {
		return false
	}
	a := Answer{Expectation: x, Client: client, Payload: append([]byte(nil), payload...), At: at}
	select {
	case r.answers <- a:
	default:
		r.dropped.Add(1)
	}
	return true
}

// ReplySuffix ends the topic an MQTT 3.1.1 device answers a command on:
// {fleet}/{device}/cmd/reply for a command published on
// {fleet}/{device}/cmd. Such a device has no correlation data: its answer
// is a JSON object carrying the command's id (see ReplyID).
const ReplySuffix = "/reply"

// ReplyID reads the command id from an MQTT 3.1.1 answer: a JSON object
// with "id" or "command_id", a string or a number. ok is false for
// anything else.
func ReplyID(payload []byte) (id string, ok bool) {
	var obj struct {
		ID        json.RawMessage `json:"id"`
		CommandID json.RawMessage `json:"command_id"`
	}
	if json.Unmarshal(payload, &obj) != nil {
		return "", false
	}
	for _, raw := range []json.RawMessage{obj.CommandID, obj.ID} {
		if len(raw) == 0 {
			continue
		}
		var s string
		if json.Unmarshal(raw, &s) == nil {
			if s != "" {
				return s, true
			}
			continue
		}
		var n json.Number
		if json.Unmarshal(raw, &n) == nil {
			return n.String(), true
		}
	}
	return "", false
}

// Replied is Responded for an MQTT 3.1.1 answer: a publish on a topic
// ending in ReplySuffix whose JSON carries the command id (ReplyID) stands
// for the correlation data. It costs a suffix check on other topics.
func (r *Registry) Replied(client, topic string, payload []byte, at time.Time) bool {
	if r.expecting.Load() == 0 || len(topic) <= len(ReplySuffix) || topic[len(topic)-len(ReplySuffix):] != ReplySuffix {
		return false
	}
	id, ok := ReplyID(payload)
	if !ok {
		return false
	}
	return r.Responded(client, topic, []byte(id), payload, at)
}

// Answers delivers the answers Responded matched.
func (r *Registry) Answers() <-chan Answer { return r.answers }
