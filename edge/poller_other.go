//go:build !linux

package edge

import (
	"errors"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// pollFD: readers are not parked on this system (no epoll); connections
// keep a reader goroutine each, as mochi does.
type pollFD struct{}

func newPoller(func(*mqtt.Client)) (*poller, error) {
	return nil, errors.New("edge: no poller on this system")
}

func (pollFD) arm(int32, bool) error { return errors.New("edge: no poller on this system") }
func (pollFD) disarm(int32)          {}
func (p *poller) close()             {}
