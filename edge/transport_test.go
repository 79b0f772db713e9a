package edge

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/url"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

func TestWebSocketListener(t *testing.T) {
	sink := &recSink{}
	cfg := testConfig(t)
	cfg.MQTTAddr = ""
	cfg.WSAddr = "127.0.0.1:0"
	e := startEdge(t, cfg, sink)
	if e.Addr() != "" {
		t.Errorf("Addr with no TCP listener: got %q, want empty", e.Addr())
	}
	u := (&url.URL{Scheme: "ws", Host: e.WSAddr(), Path: "/mqtt"}).String()
	c := mustConnect3(t, u, "ws-client", nil)
	if err := publish3(t, c, "fleet/ws-dev/t", 1, false, "over ws"); err != nil {
		t.Fatal(err)
	}
	m := sink.waitMsgs(t, 1)[0]
	if string(m.Value) != "over ws" || string(m.Key) != "ws-dev" {
		t.Errorf("got %q key %q, want \"over ws\" key ws-dev", m.Value, m.Key)
	}
	// Messages also flow back to a WebSocket subscriber.
	got := make(chan paho.Message, 1)
	tok := c.Subscribe("fleet/ws-dev/cmd/#", 1, func(_ paho.Client, m paho.Message) { got <- m })
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	if err := e.Publish("fleet/ws-dev/cmd/x", []byte("down"), 1, false); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if string(m.Payload()) != "down" {
			t.Errorf("got %q, want down", m.Payload())
		}
	case <-time.After(wait):
		t.Fatal("downlink over websocket not delivered")
	}
}

func TestTLSListener(t *testing.T) {
	cert, pool := selfSigned(t)
	sink := &recSink{}
	cfg := testConfig(t)
	cfg.TLSAddr = "127.0.0.1:0"
	cfg.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	e := startEdge(t, cfg, sink)
	u := (&url.URL{Scheme: "ssl", Host: e.TLSAddr()}).String()
	c := mustConnect3(t, u, "tls-client", func(o *paho.ClientOptions) {
		o.SetTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	})
	if err := publish3(t, c, "fleet/tls-dev/t", 1, false, "secret"); err != nil {
		t.Fatal(err)
	}
	if m := sink.waitMsgs(t, 1)[0]; string(m.Value) != "secret" {
		t.Errorf("got %q, want secret", m.Value)
	}
	// An untrusting client fails the handshake; the edge does not care.
	if _, err := connect3(t, u, "tls-untrusting", func(o *paho.ClientOptions) {
		o.SetTLSConfig(&tls.Config{RootCAs: x509.NewCertPool(), MinVersion: tls.VersionTLS12})
	}); err == nil {
		t.Errorf("client without the CA: connected, want a TLS failure")
	}
	// Plain MQTT on the TLS port is refused.
	r := dialRaw(t, e.TLSAddr())
	r.send(connectPacket(4, "plain", "", ""))
	r.waitClosed()
}

// selfSigned writes a self-signed certificate for 127.0.0.1 and returns
// the PEM files and a pool that trusts it.
func selfSigned(t *testing.T) (cert tls.Certificate, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "fluxo edge test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}
