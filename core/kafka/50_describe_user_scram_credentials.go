package kafka

import (
	"context"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core/cluster"
)

// DescribeUserScramCredentials v0 (KIP-554).
//
// Behavior, as Kafka's controller answers:
//   - No users named (null or empty): every user with a credential,
//     sorted by name.
//   - A named user without credentials: RESOURCE_NOT_FOUND; a user named
//     twice: DUPLICATE_RESOURCE (once for that user).
//   - Each user's credentials are its mechanisms (1 SCRAM-SHA-256, 2
//     SCRAM-SHA-512) and iteration counts; salts and keys never leave
//     the cluster.
func (s *Server) handleDescribeUserSCRAMCredentials(_ context.Context, cc *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DescribeUserSCRAMCredentialsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeUserSCRAMCredentialsResponse)
	if !s.authorizeCluster(cc, kmsg.ACLOperationDescribe) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		msg := "DESCRIBE on the cluster is required"
		resp.ErrorMessage = &msg
		return resp, nil
	}
	state := s.cfg.Metadata.State()
	var names []string
	if len(req.Users) == 0 {
		for name := range state.Users {
			names = append(names, name)
		}
		slices.Sort(names)
	} else {
		for _, u := range req.Users {
			names = append(names, u.Name)
		}
	}
	count := map[string]int{}
	for _, n := range names {
		count[n]++
	}
	reported := map[string]bool{}
	for _, name := range names {
		if reported[name] {
			continue
		}
		reported[name] = true
		r := kmsg.NewDescribeUserSCRAMCredentialsResponseResult()
		r.User = name
		fail := func(code int16, msg string) {
			r.ErrorCode = code
			r.ErrorMessage = &msg
		}
		mechs := state.Users[name]
		switch {
		case count[name] > 1:
			fail(kerr.DuplicateResource.Code, "cannot describe scram credentials for the same user twice in a single request")
		case len(mechs) == 0:
			fail(kerr.ResourceNotFound.Code, "attempt to describe a user credential that does not exist")
		default:
			for _, m := range []string{cluster.ScramSHA256, cluster.ScramSHA512} {
				c, ok := mechs[m]
				if !ok {
					continue
				}
				info := kmsg.NewDescribeUserSCRAMCredentialsResponseResultCredentialInfo()
				info.Mechanism = scramMechanismCode(m)
				info.Iterations = int32(c.Iterations)
				r.CredentialInfos = append(r.CredentialInfos, info)
			}
		}
		resp.Results = append(resp.Results, r)
	}
	return resp, nil
}

// scramMechanismCode is the wire code of a SCRAM mechanism (Kafka's
// ScramMechanism.type), 0 for unknown.
func scramMechanismCode(m string) int8 {
	switch m {
	case cluster.ScramSHA256:
		return 1
	case cluster.ScramSHA512:
		return 2
	}
	return 0
}

// scramMechanismName reverses scramMechanismCode; "" for an unknown code.
func scramMechanismName(code int8) string {
	switch code {
	case 1:
		return cluster.ScramSHA256
	case 2:
		return cluster.ScramSHA512
	}
	return ""
}
