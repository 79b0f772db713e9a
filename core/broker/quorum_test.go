package broker

import (
	"testing"
	"time"
)

func TestLeaseRule(t *testing.T) {
	const lease = time.Second
	names := map[leaseStep]string{leaseKeep: "keep", leaseStepDown: "step down", leaseResume: "resume"}
	for _, tc := range []struct {
		name        string
		lost        bool
		lastContact time.Duration
		lease       time.Duration
		want        leaseStep
	}{
		{"in contact", false, 50 * time.Millisecond, lease, leaseKeep},
		{"just at the lease", false, lease, lease, leaseKeep},
		{"past the lease", false, lease + time.Millisecond, lease, leaseStepDown},
		{"long cut off", false, time.Hour, lease, leaseStepDown},
		{"still cut off", true, 2 * lease, lease, leaseKeep},
		{"contact back", true, 10 * time.Millisecond, lease, leaseResume},
		{"contact back at the lease", true, lease, lease, leaseResume},
		{"no lease, cut off", false, time.Hour, 0, leaseKeep},
		{"lease switched off while stepped down", true, time.Hour, 0, leaseResume},
		{"negative lease", false, time.Hour, -time.Second, leaseKeep},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := leaseRule(tc.lost, tc.lastContact, tc.lease); got != tc.want {
				t.Errorf("leaseRule(%v, %v, %v): got %s, want %s", tc.lost, tc.lastContact, tc.lease, names[got], names[tc.want])
			}
		})
	}
}
