package kafka

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// RequestHeader is the header that starts every request frame.
//
//	v0 (ControlledShutdown v0 only): api key int16 | api version int16 | correlation id int32
//	v1:                              v0 | client id nullable string (int16 length, -1 = null)
//	v2 (flexible versions):          v1 | tagged fields
//
// The client id stays a non-compact string in v2, so that a broker can read
// the header of a version it does not know.
type RequestHeader struct {
	Key           int16
	Version       int16
	CorrelationID int32
	ClientID      string // a null client id reads as "", as in Kafka
}

var (
	// errUnknownKey is an api key kmsg has no request type for.
	errUnknownKey = errors.New("kafka: unknown api key")
	// errUnknownVersion is a version outside what kmsg can decode.
	errUnknownVersion = errors.New("kafka: api version unknown to the decoder")
	// errMalformed is a frame whose header or body does not decode.
	errMalformed = errors.New("kafka: malformed request")
)

// readHeader parses the request header at the front of frame, the bytes
// after the length prefix. It returns a request of the header's key with
// its version set, still empty, and the rest of the frame, the body. For a
// key kmsg does not know it returns errUnknownKey and the header's fixed
// fields, since the header's format then is unknown.
func readHeader(frame []byte) (RequestHeader, kmsg.Request, []byte, error) {
	var hdr RequestHeader
	r := kbin.Reader{Src: frame}
	hdr.Key = r.Int16()
	hdr.Version = r.Int16()
	hdr.CorrelationID = r.Int32()
	if !r.Ok() {
		return hdr, nil, nil, fmt.Errorf("%w: header shorter than %d bytes", errMalformed, minFrameBytes)
	}
	req := kmsg.RequestForKey(hdr.Key)
	if req == nil {
		return hdr, nil, nil, errUnknownKey
	}
	req.SetVersion(hdr.Version)
	if hdr.Key == int16(kmsg.ControlledShutdown) && hdr.Version == 0 {
		return hdr, req, r.Src, nil
	}
	if id := r.NullableString(); id != nil {
		hdr.ClientID = *id
	}
	if req.IsFlexible() {
		kmsg.SkipTags(&r)
	}
	if !r.Ok() {
		return hdr, nil, nil, fmt.Errorf("%w: truncated header", errMalformed)
	}
	return hdr, req, r.Src, nil
}

// decodeBody decodes body into req at the version readHeader set. Bytes
// left after a complete body are ignored, as Kafka ignores them.
func decodeBody(req kmsg.Request, body []byte) error {
	if v := req.GetVersion(); v < 0 || v > req.MaxVersion() {
		return fmt.Errorf("%w: %s v%d, decoder knows v0-v%d", errUnknownVersion, kmsg.NameForKey(req.Key()), v, req.MaxVersion())
	}
	if err := req.ReadFrom(body); err != nil {
		return fmt.Errorf("%w: %s v%d body: %v", errMalformed, kmsg.NameForKey(req.Key()), req.GetVersion(), err)
	}
	return nil
}

// decodeRequest turns a request frame (without its length prefix) into its
// header and decoded request.
func decodeRequest(frame []byte) (RequestHeader, kmsg.Request, error) {
	hdr, req, body, err := readHeader(frame)
	if err != nil {
		return hdr, nil, err
	}
	if err := decodeBody(req, body); err != nil {
		return hdr, nil, err
	}
	return hdr, req, nil
}

// decodeBodySafe is decodeBody for bytes from the network: a panic in the
// decoder, which would be a decoder bug, is returned as errMalformed so
// that one client cannot take the broker down.
func decodeBodySafe(req kmsg.Request, body []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: decoder panic: %v", errMalformed, r)
		}
	}()
	return decodeBody(req, body)
}
