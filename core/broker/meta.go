package broker

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// TopicMeta is what the cluster knows of a topic.
type TopicMeta struct {
	Name       string            `json:"name"`
	ID         [16]byte          `json:"id"`
	Partitions int32             `json:"partitions"`
	Configs    map[string]string `json:"configs,omitempty"`
}

// Metadata is the cluster metadata: topics, their partitions and configs,
// and the producer id allocator. This node's implementation keeps it in a
// file; a cluster keeps it in Raft.
//
// Implementations are safe for concurrent use. Each change is durable when
// the method returns.
type Metadata interface {
	Topics() []TopicMeta
	CreateTopic(t TopicMeta) error // ErrTopicExists if the name is taken
	DeleteTopic(name string) error // ErrUnknownTopic if absent
	SetPartitions(name string, n int32) error
	SetConfigs(name string, configs map[string]string) error
	// AllocateProducerIDs reserves n consecutive producer ids and returns
	// the first.
	AllocateProducerIDs(n int64) (int64, error)
}

var (
	// ErrTopicExists is returned when creating a topic whose name is taken.
	ErrTopicExists = errors.New("broker: topic exists")
	// ErrUnknownTopic is returned for a topic the metadata does not hold.
	ErrUnknownTopic = errors.New("broker: unknown topic")
)

// fileMetadata is Metadata in one JSON file, rewritten atomically on each
// change.
type fileMetadata struct {
	path string
	mu   sync.Mutex // guards state and the file
	st   metaState
}

type metaState struct {
	Topics         map[string]TopicMeta `json:"topics"`
	NextProducerID int64                `json:"next_producer_id"`
}

func openFileMetadata(path string) (*fileMetadata, error) {
	m := &fileMetadata{path: path, st: metaState{Topics: map[string]TopicMeta{}, NextProducerID: 1000}}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return m, m.saveLocked()
	}
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	if err := json.Unmarshal(data, &m.st); err != nil {
		return nil, fmt.Errorf("broker: %s: %w", path, err)
	}
	if m.st.Topics == nil {
		m.st.Topics = map[string]TopicMeta{}
	}
	return m, nil
}

func (m *fileMetadata) saveLocked() error {
	data, err := json.MarshalIndent(&m.st, "", "  ")
	if err != nil {
		return err
	}
	tmp := m.path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	if _, err = f.Write(data); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, m.path)
	}
	if err == nil {
		var d *os.File
		if d, err = os.Open(filepath.Dir(m.path)); err == nil {
			err = d.Sync()
			d.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("broker: cannot save metadata: %w", err)
	}
	return nil
}

func (m *fileMetadata) Topics() []TopicMeta {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]TopicMeta, 0, len(m.st.Topics))
	for _, t := range m.st.Topics {
		out = append(out, t)
	}
	return out
}

func (m *fileMetadata) CreateTopic(t TopicMeta) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.st.Topics[t.Name]; ok {
		return ErrTopicExists
	}
	if t.ID == ([16]byte{}) {
		rand.Read(t.ID[:])
	}
	m.st.Topics[t.Name] = t
	if err := m.saveLocked(); err != nil {
		delete(m.st.Topics, t.Name)
		return err
	}
	return nil
}

func (m *fileMetadata) DeleteTopic(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.st.Topics[name]
	if !ok {
		return ErrUnknownTopic
	}
	delete(m.st.Topics, name)
	if err := m.saveLocked(); err != nil {
		m.st.Topics[name] = t
		return err
	}
	return nil
}

func (m *fileMetadata) update(name string, f func(*TopicMeta)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.st.Topics[name]
	if !ok {
		return ErrUnknownTopic
	}
	old := t
	f(&t)
	m.st.Topics[name] = t
	if err := m.saveLocked(); err != nil {
		m.st.Topics[name] = old
		return err
	}
	return nil
}

func (m *fileMetadata) SetPartitions(name string, n int32) error {
	return m.update(name, func(t *TopicMeta) { t.Partitions = n })
}

func (m *fileMetadata) SetConfigs(name string, configs map[string]string) error {
	return m.update(name, func(t *TopicMeta) { t.Configs = configs })
}

func (m *fileMetadata) AllocateProducerIDs(n int64) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	first := m.st.NextProducerID
	m.st.NextProducerID += n
	if err := m.saveLocked(); err != nil {
		m.st.NextProducerID = first
		return 0, err
	}
	return first, nil
}
