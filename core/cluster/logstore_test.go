package cluster

import (
	"errors"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestBoltStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	s, err := openBoltStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if first, err := s.FirstIndex(); first != 0 || err != nil {
		t.Fatalf("empty: got first %d, %v, want 0, nil", first, err)
	}
	if last, err := s.LastIndex(); last != 0 || err != nil {
		t.Fatalf("empty: got last %d, %v, want 0, nil", last, err)
	}
	var logs []*raft.Log
	for i := uint64(1); i <= 5; i++ {
		logs = append(logs, &raft.Log{Index: i, Term: 2, Type: raft.LogCommand, Data: []byte{byte(i)},
			AppendedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)})
	}
	if err := s.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	var got raft.Log
	if err := s.GetLog(3, &got); err != nil || !reflect.DeepEqual(&got, logs[2]) {
		t.Fatalf("got %+v, %v, want %+v", got, err, logs[2])
	}
	if err := s.DeleteRange(1, 2); err != nil {
		t.Fatal(err)
	}
	if err := s.GetLog(2, &got); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("deleted log: got %v, want ErrLogNotFound", err)
	}
	if first, _ := s.FirstIndex(); first != 3 {
		t.Fatalf("got first %d, want 3", first)
	}
	if _, err := s.GetUint64([]byte("CurrentTerm")); err == nil || err.Error() != "not found" {
		t.Fatalf("unset key: got %v, want \"not found\" (raft tests the text)", err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 7); err != nil {
		t.Fatal(err)
	}
	// It all survives a reopen.
	s.Close()
	if s, err = openBoltStore(path); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, err := s.GetUint64([]byte("CurrentTerm")); v != 7 || err != nil {
		t.Fatalf("got %d, %v, want 7, nil", v, err)
	}
	if last, _ := s.LastIndex(); last != 5 {
		t.Fatalf("got last %d, want 5", last)
	}
}
