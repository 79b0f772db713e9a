package cluster

import (
	"fmt"
	"maps"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"

	"github.com/fluxo-io/fluxo/internal/logadapt"
)

// Serf tags of a fluxo member.
const (
	tagID      = "id"      // node id, decimal
	tagKafka   = "kafka"   // advertised Kafka address (inter-broker listener)
	tagListen  = "listen"  // advertised listeners, NAME://HOST:PORT,... (only with more than one)
	tagRaft    = "raft"    // advertised Raft address
	tagLeaving = "leaving" // "1" once Leave started: never register it again
	tagUnclean = "unclean" // "1" when this run followed a crash (Config.Unclean)
	tagCutOff  = "cutoff"  // "1" while this broker has stepped down for lack of contact with the Raft leader (ReportCutOff)
)

// maxTags is memberlist's limit on a member's metadata, which holds the
// encoded tags.
const maxTags = memberlist.MetaMaxSize

func (c *Config) tags(raftAddr string) map[string]string {
	tags := map[string]string{
		tagID:    strconv.Itoa(int(c.NodeID)),
		tagKafka: c.KafkaAddr,
		tagRaft:  raftAddr,
	}
	if c.Unclean {
		tags[tagUnclean] = "1"
	}
	if len(c.KafkaListeners) > 0 {
		tags[tagListen] = formatListeners(c.KafkaListeners)
	}
	return tags
}

// validateTags checks an upper bound of the encoded size (serf encodes a
// magic byte and a msgpack map: at most 5 bytes of header per string).
func validateTags(tags map[string]string) error {
	n := 1 + 5
	for k, v := range tags {
		n += len(k) + len(v) + 10
	}
	// The raft address is not known before binding when the port is 0:
	// count it at its longest.
	if tags[tagRaft] == "" {
		n += len("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535")
	}
	// The leaving and cutoff tags come and go at run time.
	for _, k := range []string{tagLeaving, tagCutOff} {
		if tags[k] == "" {
			n += len(k) + 1 + 10
		}
	}
	if n > maxTags {
		return fmt.Errorf("cluster: serf tags of up to %d bytes, limit %d: shorten the advertised addresses", n, maxTags)
	}
	return nil
}

// openSerf starts Serf with this member's tags.
func (c *Cluster) openSerf() error {
	t := c.cfg.Timers
	host, port, err := splitHostPort(c.cfg.SerfAddr)
	if err != nil {
		return err
	}
	ml := memberlist.DefaultLANConfig()
	ml.BindAddr, ml.BindPort = host, port
	ml.AdvertiseAddr, ml.AdvertisePort = "", port
	if c.cfg.SerfAdvertise != "" {
		if ml.AdvertiseAddr, ml.AdvertisePort, err = splitHostPort(c.cfg.SerfAdvertise); err != nil {
			return err
		}
		// memberlist wants an IP: a host name (a pod's stable DNS name,
		// a compose service) is resolved once, at start.
		if net.ParseIP(ml.AdvertiseAddr) == nil {
			ips, err := net.LookupIP(ml.AdvertiseAddr)
			if err != nil || len(ips) == 0 {
				return fmt.Errorf("cluster: serf advertise address %q: cannot resolve: %v", c.cfg.SerfAdvertise, err)
			}
			ml.AdvertiseAddr = ips[0].String()
			for _, ip := range ips {
				if ip.To4() != nil {
					ml.AdvertiseAddr = ip.String()
					break
				}
			}
		}
	}
	ml.ProbeInterval = t.SerfProbeInterval
	ml.ProbeTimeout = t.SerfProbeTimeout
	ml.GossipInterval = t.SerfGossipInterval
	ml.SuspicionMult = t.SerfSuspicionMult
	// Without confirmations from other members the suspicion lasts
	// SuspicionMaxTimeoutMult times the minimum; 2 keeps a 2- or 3-member
	// cluster's detection within the arithmetic of the package doc.
	ml.SuspicionMaxTimeoutMult = 2
	ml.Logger = logadapt.StdLogger(c.log, "memberlist", keyErrorLogger(c.keyErrors.Inc))
	if c.cfg.Network != nil {
		nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{host}, BindPort: port, Logger: ml.Logger})
		if err != nil {
			return fmt.Errorf("cluster: serf: %w", err)
		}
		if port == 0 {
			ml.BindPort = nt.GetAutoBindPort()
			if c.cfg.SerfAdvertise == "" {
				ml.AdvertisePort = ml.BindPort
			}
		}
		ml.Transport = &netTransport{NetTransport: nt, nw: c.cfg.Network}
	}
	kr, err := c.loadKeyring()
	if err != nil {
		return err
	}
	if kr != nil {
		ml.Keyring = kr
	}

	sc := serf.DefaultConfig()
	sc.Init()
	sc.NodeName = c.name
	sc.Tags = c.cfg.tags(c.raftAddr)
	sc.EventCh = c.serfEvents
	sc.MemberlistConfig = ml
	sc.Logger = logadapt.StdLogger(c.log, "serf", keyErrorLogger(c.keyErrors.Inc))
	sc.LogOutput = nil
	if kr != nil {
		// Serf rewrites it after each key operation, so that an
		// installed key survives a restart (loadKeyring reads it).
		sc.KeyringFile = filepath.Join(c.cfg.DataDir, keyringFile)
	}
	sc.ReapInterval = t.SerfReapInterval
	sc.ReconnectTimeout = t.SerfReconnectTimeout
	sc.TombstoneTimeout = t.SerfReconnectTimeout
	sc.ReconnectInterval = min(30*time.Second, max(t.SerfReconnectTimeout/10, time.Second))
	// How long Leave lingers for its leave message to spread.
	sc.LeavePropagateDelay = 2 * t.SerfProbeInterval
	s, err := serf.Create(sc)
	if err != nil {
		return fmt.Errorf("cluster: serf: %w", err)
	}
	c.serf = s
	lm := s.LocalMember()
	c.serfAddr = net.JoinHostPort(lm.Addr.String(), strconv.Itoa(int(lm.Port)))
	return nil
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("cluster: address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("cluster: address %q: bad port", addr)
	}
	return host, port, nil
}

// parseMember returns the broker a Serf member with fluxo tags is.
func parseMember(m serf.Member) (BrokerInfo, bool) {
	id, err := strconv.ParseInt(m.Tags[tagID], 10, 32)
	if err != nil || id < 0 || m.Tags[tagRaft] == "" {
		return BrokerInfo{}, false
	}
	return BrokerInfo{
		ID:        int32(id),
		KafkaAddr: m.Tags[tagKafka],
		Listeners: parseListeners(m.Tags[tagListen]),
		RaftAddr:  m.Tags[tagRaft],
		SerfAddr:  net.JoinHostPort(m.Addr.String(), strconv.Itoa(int(m.Port))),
		Unclean:   m.Tags[tagUnclean] == "1",
	}, true
}

// drainSerfEvents empties Serf's event channel, which must never block
// Serf, into the 1-buffered reconcile signal.
func (c *Cluster) drainSerfEvents() {
	for {
		select {
		case <-c.quit:
			return
		case e := <-c.serfEvents:
			if me, ok := e.(serf.MemberEvent); ok {
				for _, m := range me.Members {
					c.log.Debug().Str("event", me.Type.String()).Str("member", m.Name).Msg("serf event")
				}
			}
			select {
			case c.reconcile <- struct{}{}:
			default:
			}
		}
	}
}

// joinAddrs is cfg.Join without this member's own address.
func (c *Cluster) joinAddrs() []string {
	return slices.DeleteFunc(slices.Clone(c.cfg.Join), func(a string) bool {
		return a == c.serfAddr || a == c.cfg.SerfAddr
	})
}

// joinLoop joins the configured members, retrying with backoff until
// another member is known or the Cluster closes. Reaching only this
// member's own address (listed under another name, such as localhost or a
// DNS name) does not count.
func (c *Cluster) joinLoop() {
	addrs := c.joinAddrs()
	wait := 50 * time.Millisecond
	for {
		n, err := c.serf.Join(addrs, true)
		if n > 0 && c.serf.NumNodes() > 1 {
			c.log.Info().Int("contacted", n).Msg("joined serf")
			return
		}
		c.log.Debug().Err(err).Strs("join", addrs).Msg("cannot join yet")
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-c.quit:
			t.Stop()
			return
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// formatListeners writes listeners as NAME://HOST:PORT,... sorted by name.
func formatListeners(ls map[string]string) string {
	names := slices.Sorted(maps.Keys(ls))
	var b strings.Builder
	for i, name := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(name + "://" + ls[name])
	}
	return b.String()
}

// parseListeners reverses formatListeners; entries that do not parse are
// skipped (a member's tags are not ours to trust blindly), and nil is
// returned when none is left.
func parseListeners(s string) map[string]string {
	var out map[string]string
	for _, e := range strings.Split(s, ",") {
		name, addr, ok := strings.Cut(e, "://")
		if !ok || name == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[name] = addr
	}
	return out
}
