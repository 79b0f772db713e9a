package kafkaprops

import (
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []Property
		err      string
	}{
		{name: "empty", in: ""},
		{name: "comments and blanks", in: "# kcat\n\n! java\n   \n"},
		{name: "equals", in: "a=b", want: []Property{{"a", "b", 1}}},
		{name: "colon", in: "a: b", want: []Property{{"a", "b", 1}}},
		{name: "trimmed, CRLF", in: "  a = b c  \r\nd=\r\n", want: []Property{{"a", "b c", 1}, {"d", "", 2}}},
		{name: "first separator wins", in: "sasl.jaas.config=x username=\"u\";\nbootstrap.servers:h:9092",
			want: []Property{{"sasl.jaas.config", `x username="u";`, 1}, {"bootstrap.servers", "h:9092", 2}}},
		{name: "no separator", in: "ok=1\nsecurity.protocol SSL", err: `line 2: got "security.protocol SSL", want key=value`},
		{name: "empty key", in: "=x", err: "line 1: empty key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseClient(t *testing.T) {
	defaults := Client{VerifyCertificate: true, VerifyHostname: true}
	with := func(f func(*Client)) Client { c := defaults; f(&c); return c }
	for _, tc := range []struct {
		name, in string
		want     Client
		err      string
	}{
		{name: "empty", in: "", want: defaults},
		{name: "kcat SASL_SSL", in: `# kcat -F
bootstrap.servers=b1:9093, b2:9093
security.protocol=sasl_ssl
sasl.mechanisms=scram-sha-512
sasl.username=edge
sasl.password=s3cret
ssl.ca.location=/etc/ssl/ca.pem
client.id=kcat
`, want: with(func(c *Client) {
			c.BootstrapServers = []string{"b1:9093", "b2:9093"}
			c.Protocol, c.SASLMechanism, c.SASLUsername, c.SASLPassword = SASLSSL, "SCRAM-SHA-512", "edge", "s3cret"
			c.CALocation = "/etc/ssl/ca.pem"
			c.Unknown = []string{"client.id"}
		})},
		{name: "mTLS", in: "security.protocol=SSL\nssl.certificate.location=c.pem\nssl.key.location=k.pem\nssl.key.password=pw\n",
			want: with(func(c *Client) {
				c.Protocol, c.CertificateLocation, c.KeyLocation, c.KeyPassword = SSL, "c.pem", "k.pem", "pw"
			})},
		{name: "verification off", in: "enable.ssl.certificate.verification=false\nssl.endpoint.identification.algorithm=none",
			want: Client{}},
		{name: "java empty algorithm", in: "ssl.endpoint.identification.algorithm=",
			want: with(func(c *Client) { c.VerifyHostname = false })},
		{name: "java jaas", in: `sasl.mechanism=PLAIN
security.protocol=SASL_PLAINTEXT
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="alice" password="pa ss";`,
			want: with(func(c *Client) {
				c.Protocol, c.SASLMechanism, c.SASLUsername, c.SASLPassword = SASLPlaintext, "PLAIN", "alice", "pa ss"
			})},
		{name: "sasl.username wins over jaas", in: "sasl.username=bob\nsasl.password=x\nsasl.jaas.config=M required username=\"alice\" password=\"y\";",
			want: with(func(c *Client) { c.SASLUsername, c.SASLPassword = "bob", "x" })},
		{name: "last value wins", in: "security.protocol=SSL\nsecurity.protocol=PLAINTEXT", want: defaults},
		{name: "bad protocol", in: "security.protocol=TLS", err: `line 1: security.protocol: got "TLS", want PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL`},
		{name: "gssapi", in: "x=1\nsasl.mechanism=GSSAPI", err: "line 2: sasl.mechanism: GSSAPI is not supported"},
		{name: "bad bool", in: "enable.ssl.certificate.verification=maybe", err: `want true or false`},
		{name: "bad algorithm", in: "ssl.endpoint.identification.algorithm=dns", err: `want https or none`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseClient([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// FuzzParse: Parse never panics; what it returns has non-empty trimmed
// keys and trimmed values, and written back as key=value lines parses to
// the same keys and values.
func FuzzParse(f *testing.F) {
	f.Add([]byte("bootstrap.servers=b:9093\nsecurity.protocol=SASL_SSL\n# c\n! c\n\nsasl.mechanisms: PLAIN\r\n"))
	f.Add([]byte("sasl.jaas.config=M required username=\"a\" password=\"b\";"))
	f.Add([]byte("=\n:\nkey\n"))
	f.Add([]byte("enable.ssl.certificate.verification=0\nssl.endpoint.identification.algorithm="))
	f.Fuzz(func(t *testing.T, data []byte) {
		ParseClient(data)
		props, err := Parse(data)
		if err != nil {
			return
		}
		var b strings.Builder
		for _, p := range props {
			if p.Key == "" || p.Key != strings.TrimSpace(p.Key) || p.Value != strings.TrimSpace(p.Value) {
				t.Fatalf("got property %+v, want a non-empty trimmed key and a trimmed value", p)
			}
			b.WriteString(p.Key + "=" + p.Value + "\n")
		}
		again, err := Parse([]byte(b.String()))
		if err != nil {
			t.Fatalf("written back: got %v, want no error", err)
		}
		if len(again) != len(props) {
			t.Fatalf("written back: got %d properties, want %d", len(again), len(props))
		}
		for i := range props {
			if again[i].Key != props[i].Key || again[i].Value != props[i].Value {
				t.Fatalf("written back: got %+v, want %+v", again[i], props[i])
			}
		}
	})
}
