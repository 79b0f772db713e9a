package broker

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/fluxo-io/fluxo/core/cluster"
)

// partitionMetadataFile names the file in each partition directory that
// records the topic id, as Kafka's partition.metadata does: a directory
// left by a deleted topic is never served as a new topic of the same name.
//
//	version: 0
//	topic_id: <base64 of the 16-byte id>
const partitionMetadataFile = "partition.metadata"

// checkTopicID makes dir belong to topic id: it removes a directory that
// names another id and writes the file where there is none.
func checkTopicID(dir string, id [16]byte) error {
	want := "version: 0\ntopic_id: " + base64.RawURLEncoding.EncodeToString(id[:]) + "\n"
	path := filepath.Join(dir, partitionMetadataFile)
	got, err := os.ReadFile(path)
	switch {
	case err == nil && string(got) == want:
		return nil
	case err == nil:
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("broker: cannot remove the data of an older topic: %w", err)
		}
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("broker: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	return nil
}

// legacyMetadata is the metadata.json of single-node versions before the
// metadata moved to Raft.
type legacyMetadata struct {
	Topics map[string]struct {
		Name       string            `json:"name"`
		ID         [16]byte          `json:"id"`
		Partitions int32             `json:"partitions"`
		Configs    map[string]string `json:"configs,omitempty"`
	} `json:"topics"`
	NextProducerID int64 `json:"next_producer_id"`
}

// ImportLegacyMetadata moves the topics of a single-node data directory's
// metadata.json into the cluster metadata (same topic ids, so the
// partition logs are kept), skips the producer ids it had handed out, and
// renames the file to metadata.json.imported. It does nothing when there
// is no such file.
func ImportLegacyMetadata(ctx context.Context, dataDir string, meta Metadata) error {
	path := filepath.Join(dataDir, "metadata.json")
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	var lm legacyMetadata
	if err := json.Unmarshal(data, &lm); err != nil {
		return fmt.Errorf("broker: %s: %w", path, err)
	}
	for name, t := range lm.Topics {
		_, err := meta.Apply(ctx, cluster.CreateTopic{Name: name, ID: t.ID, Partitions: t.Partitions, ReplicationFactor: 1, Configs: t.Configs})
		if err != nil && !errors.Is(err, cluster.ErrTopicExists) {
			return fmt.Errorf("broker: import topic %s: %w", name, err)
		}
	}
	st, _ := meta.Watch()
	if skip := lm.NextProducerID - st.NextProducerID; skip > 0 {
		if _, err := meta.Apply(ctx, cluster.AllocateProducerIDs{N: skip}); err != nil {
			return fmt.Errorf("broker: import producer ids: %w", err)
		}
	}
	if err := os.Rename(path, path+".imported"); err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	return nil
}
