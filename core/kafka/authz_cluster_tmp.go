package kafka

import "github.com/twmb/franz-go/pkg/kmsg"

// authorizeCluster reports whether the connection's principal may perform
// op on the Cluster resource. Placeholder: every principal may, until
// ACLs are enforced.
func (s *Server) authorizeCluster(_ *Conn, _ kmsg.ACLOperation) bool { return true }
