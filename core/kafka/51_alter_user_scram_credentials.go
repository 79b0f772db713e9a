package kafka

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core/cluster"
)

// AlterUserScramCredentials v0 (KIP-554).
//
// Behavior, as Kafka's controller answers, with one result per user:
//   - The client salts the password itself (salt, iterations, salted
//     password); the broker keeps RFC 5802's StoredKey and ServerKey
//     derived from the salted password, never the salted password.
//   - A user named twice in one request (in deletions, upsertions or
//     both): DUPLICATE_RESOURCE, and none of its changes is made.
//   - Empty user name: UNACCEPTABLE_CREDENTIAL; unknown mechanism:
//     UNSUPPORTED_SASL_MECHANISM; iterations outside 4096-16384, or an
//     empty salt or salted password: UNACCEPTABLE_CREDENTIAL.
//   - Deleting a credential the user does not have: RESOURCE_NOT_FOUND.
//   - Each user's change is its own metadata command: one user's error
//     does not stop the others.
func (s *Server) handleAlterUserSCRAMCredentials(ctx context.Context, cc *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.AlterUserSCRAMCredentialsRequest)
	resp := req.ResponseKind().(*kmsg.AlterUserSCRAMCredentialsResponse)

	// One change per user, in request order (deletions first).
	type change struct {
		user string
		cmd  cluster.Command
		code int16
		msg  string
	}
	var changes []*change
	byUser := map[string]*change{}
	add := func(user string, cmd cluster.Command, code int16, msg string) {
		if c, dup := byUser[user]; dup {
			c.cmd, c.code, c.msg = nil, kerr.DuplicateResource.Code, "a user credential cannot be altered twice in the same request"
			return
		}
		c := &change{user: user, cmd: cmd, code: code, msg: msg}
		byUser[user] = c
		changes = append(changes, c)
	}
	if !s.authorizeCluster(cc, kmsg.ACLOperationAlter) {
		for _, d := range req.Deletions {
			add(d.Name, nil, kerr.ClusterAuthorizationFailed.Code, "ALTER on the cluster is required")
		}
		for _, u := range req.Upsertions {
			add(u.Name, nil, kerr.ClusterAuthorizationFailed.Code, "ALTER on the cluster is required")
		}
		req.Deletions, req.Upsertions = nil, nil
	}
	for _, d := range req.Deletions {
		mech := scramMechanismName(d.Mechanism)
		switch {
		case d.Name == "":
			add(d.Name, nil, kerr.UnacceptableCredential.Code, "username must not be empty")
		case mech == "":
			add(d.Name, nil, kerr.UnsupportedSaslMechanism.Code, "unknown scram mechanism")
		default:
			add(d.Name, cluster.DeleteScramCredential{User: d.Name, Mechanism: mech}, 0, "")
		}
	}
	for _, u := range req.Upsertions {
		mech := scramMechanismName(u.Mechanism)
		switch {
		case u.Name == "":
			add(u.Name, nil, kerr.UnacceptableCredential.Code, "username must not be empty")
		case mech == "":
			add(u.Name, nil, kerr.UnsupportedSaslMechanism.Code, "unknown scram mechanism")
		case u.Iterations < cluster.MinScramIterations:
			add(u.Name, nil, kerr.UnacceptableCredential.Code, "too few iterations")
		case u.Iterations > cluster.MaxScramIterations:
			add(u.Name, nil, kerr.UnacceptableCredential.Code, "too many iterations")
		case len(u.Salt) == 0 || len(u.SaltedPassword) == 0:
			add(u.Name, nil, kerr.UnacceptableCredential.Code, "salt and salted password must not be empty")
		default:
			cred := scramCredential(mech, u.Salt, u.SaltedPassword, int(u.Iterations))
			add(u.Name, cluster.UpsertScramCredential{User: u.Name, Mechanism: mech, Credential: cred}, 0, "")
		}
	}
	for _, c := range changes {
		if c.cmd != nil {
			if _, err := s.applyMetadata(ctx, c.cmd); err != nil {
				c.code, c.msg = metadataErrorCode(err), err.Error()
			}
		}
		r := kmsg.NewAlterUserSCRAMCredentialsResponseResult()
		r.User = c.user
		if c.code != 0 {
			r.ErrorCode = c.code
			msg := c.msg
			r.ErrorMessage = &msg
		}
		resp.Results = append(resp.Results, r)
	}
	return resp, nil
}

// scramCredential derives what the server keeps of a salted password
// (RFC 5802): ClientKey = HMAC(SaltedPassword, "Client Key"), StoredKey =
// H(ClientKey), ServerKey = HMAC(SaltedPassword, "Server Key").
func scramCredential(mechanism string, salt, saltedPassword []byte, iterations int) cluster.ScramCredential {
	h := sha512.New
	if mechanism == cluster.ScramSHA256 {
		h = sha256.New
	}
	mac := func(key []byte, msg string) []byte {
		m := hmac.New(h, key)
		m.Write([]byte(msg))
		return m.Sum(nil)
	}
	sum := func(b []byte) []byte {
		d := h()
		d.Write(b)
		return d.Sum(nil)
	}
	return cluster.ScramCredential{
		Salt:       append([]byte(nil), salt...),
		StoredKey:  sum(mac(saltedPassword, "Client Key")),
		ServerKey:  mac(saltedPassword, "Server Key"),
		Iterations: iterations,
	}
}
