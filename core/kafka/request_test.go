package kafka

import (
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// seedRequests are real requests as clients encode them, at old and new
// versions, flexible or not.
func seedRequests() []kmsg.Request {
	var reqs []kmsg.Request
	at := func(r kmsg.Request, v int16) kmsg.Request { r.SetVersion(v); return r }

	for _, v := range []int16{0, 3, 5} {
		r := kmsg.NewPtrApiVersionsRequest()
		r.ClientSoftwareName, r.ClientSoftwareVersion = "kgo", "v1.22.3"
		if v == 5 {
			r.ClusterID, r.NodeID = kmsg.StringPtr("cluster"), 1
		}
		reqs = append(reqs, at(r, v))
	}

	produce := kmsg.NewPtrProduceRequest()
	produce.Acks = -1
	produce.TimeoutMillis = 5000
	pt := kmsg.NewProduceRequestTopic()
	pt.Topic = "telemetry"
	pp := kmsg.NewProduceRequestTopicPartition()
	pp.Partition = 3
	pp.Records = []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 49, 0, 0, 0, 0, 2, 1, 2, 3, 4}
	pt.Partitions = append(pt.Partitions, pp)
	produce.Topics = append(produce.Topics, pt)
	reqs = append(reqs, at(produce, 3), at(produce, 9))

	fetch := kmsg.NewPtrFetchRequest()
	fetch.MaxWaitMillis = 500
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = "telemetry"
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.FetchOffset = 42
	fp.PartitionMaxBytes = 1 << 20
	ft.Partitions = append(ft.Partitions, fp)
	fetch.Topics = append(fetch.Topics, ft)
	reqs = append(reqs, at(fetch, 4), at(fetch, 12))

	meta := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr("alarms")
	meta.Topics = append(meta.Topics, mt)
	reqs = append(reqs, at(meta, 1), at(meta, 12))

	join := kmsg.NewPtrJoinGroupRequest()
	join.Group, join.ProtocolType = "dashboards", "consumer"
	jp := kmsg.NewJoinGroupRequestProtocol()
	jp.Name, jp.Metadata = "cooperative-sticky", []byte{0, 1, 2}
	join.Protocols = append(join.Protocols, jp)
	reqs = append(reqs, at(join, 5), at(join, 9))

	commit := kmsg.NewPtrOffsetCommitRequest()
	commit.Group = "dashboards"
	reqs = append(reqs, at(commit, 8))

	reqs = append(reqs,
		at(kmsg.NewPtrControlledShutdownRequest(), 0), // header without client id
		at(kmsg.NewPtrControlledShutdownRequest(), 1),
		at(kmsg.NewPtrSASLHandshakeRequest(), 1),
		at(kmsg.NewPtrHeartbeatRequest(), 4),
		at(kmsg.NewPtrFindCoordinatorRequest(), 4),
	)
	return reqs
}

// encode is a request frame without its length prefix, as a client sends
// it. kmsg's formatter leaves out ControlledShutdown v0 (header v0, without
// a client id), which is written here by hand.
func encode(req kmsg.Request, corr int32, clientID string) []byte {
	if req.Key() == int16(kmsg.ControlledShutdown) && req.GetVersion() == 0 {
		b := kbin.AppendInt16(nil, req.Key())
		b = kbin.AppendInt16(b, 0)
		b = kbin.AppendInt32(b, corr)
		return req.AppendTo(b)
	}
	return kmsg.NewRequestFormatter(kmsg.FormatterClientID(clientID)).AppendRequest(nil, req, corr)[4:]
}

// FuzzRequestFrame fuzzes decodeRequest, which turns a request frame (the
// bytes after the length prefix) into its header and decoded request.
//
// Invariant: decodeRequest never panics; it returns either an error or a
// request whose key and version are the header's and which, encoded again
// with the same header, decodes to the same key, version, correlation id
// and client id.
func FuzzRequestFrame(f *testing.F) {
	for i, req := range seedRequests() {
		f.Add(encode(req, int32(i), "fluxo"))
	}
	f.Add([]byte{0, 18, 0, 99, 0, 0, 0, 1, 0xff, 0xff, 0}) // ApiVersions v99
	f.Add([]byte{0x27, 0x0f, 0, 0, 0, 0, 0, 1, 0, 0})      // key 9999

	f.Fuzz(func(t *testing.T, frame []byte) {
		hdr, req, err := decodeRequest(frame)
		if err != nil {
			if req != nil {
				t.Fatalf("decodeRequest: got a request with error %v, want nil", err)
			}
			return
		}
		if req.Key() != hdr.Key || req.GetVersion() != hdr.Version {
			t.Fatalf("request: got key %d v%d, want the header's key %d v%d", req.Key(), req.GetVersion(), hdr.Key, hdr.Version)
		}
		hdr2, req2, err := decodeRequest(encode(req, hdr.CorrelationID, hdr.ClientID))
		if err != nil {
			t.Fatalf("decode of re-encoded %s v%d: got %v, want nil", kmsg.NameForKey(hdr.Key), hdr.Version, err)
		}
		if hdr2 != hdr {
			t.Fatalf("re-encoded header: got %+v, want %+v", hdr2, hdr)
		}
		if req2.Key() != hdr.Key || req2.GetVersion() != hdr.Version {
			t.Fatalf("re-encoded request: got key %d v%d, want %d v%d", req2.Key(), req2.GetVersion(), hdr.Key, hdr.Version)
		}
	})
}

func TestDecodeRequestErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		frame []byte
		want  error
	}{
		{"empty", nil, errMalformed},
		{"short header", []byte{0, 18, 0, 0, 0, 0, 0}, errMalformed},
		{"unknown key", []byte{0x27, 0x0f, 0, 0, 0, 0, 0, 1, 0, 0}, errUnknownKey},
		{"version beyond the decoder", []byte{0, 18, 0, 99, 0, 0, 0, 1, 0xff, 0xff, 0}, errUnknownVersion},
		{"negative version", []byte{0, 18, 0xff, 0xff, 0, 0, 0, 1, 0xff, 0xff}, errUnknownVersion},
		{"missing client id", []byte{0, 18, 0, 0, 0, 0, 0, 1}, errMalformed},
		{"body truncated", []byte{0, 3, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 0, 0, 0, 1}, errMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := decodeRequest(tc.frame)
			if !errors.Is(err, tc.want) {
				t.Fatalf("decodeRequest: got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestDecodeRequestSeeds(t *testing.T) {
	for i, req := range seedRequests() {
		hdr, got, err := decodeRequest(encode(req, int32(i), "fluxo"))
		if err != nil {
			t.Fatalf("%s v%d: got %v, want nil", kmsg.NameForKey(req.Key()), req.GetVersion(), err)
		}
		wantID := "fluxo"
		if req.Key() == int16(kmsg.ControlledShutdown) && req.GetVersion() == 0 {
			wantID = ""
		}
		want := RequestHeader{Key: req.Key(), Version: req.GetVersion(), CorrelationID: int32(i), ClientID: wantID}
		if hdr != want {
			t.Fatalf("header: got %+v, want %+v", hdr, want)
		}
		if got.GetVersion() != req.GetVersion() {
			t.Fatalf("version: got %d, want %d", got.GetVersion(), req.GetVersion())
		}
	}
}
