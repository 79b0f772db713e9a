package edge

import (
	"errors"
	"fmt"

	mqtt "github.com/mochi-mqtt/server/v2"
	"golang.org/x/sys/unix"
)

// pollFD is an epoll instance, and an eventfd in it that stops the
// poller's goroutine.
type pollFD struct {
	ep, stop int
}

// newPoller opens the poller and starts its goroutine; resume is called
// (on the poller's goroutine, so it must not block) with each client
// whose socket became readable.
func newPoller(resume func(*mqtt.Client)) (*poller, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("edge: cannot create epoll instance: %w", err)
	}
	stop, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(ep)
		return nil, fmt.Errorf("edge: cannot create eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(stop)}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, stop, &ev); err != nil {
		unix.Close(ep)
		unix.Close(stop)
		return nil, fmt.Errorf("edge: cannot watch eventfd: %w", err)
	}
	p := &poller{fd: pollFD{ep: ep, stop: stop}, resume: resume, done: make(chan struct{})}
	go p.run()
	return p, nil
}

// arm watches fd for one readiness event (again, if rearm).
func (f pollFD) arm(fd int32, rearm bool) error {
	op := unix.EPOLL_CTL_ADD
	if rearm {
		op = unix.EPOLL_CTL_MOD
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: fd}
	return unix.EpollCtl(f.ep, op, int(fd), &ev)
}

// disarm stops watching fd; it is called before fd is closed.
func (f pollFD) disarm(fd int32) {
	_ = unix.EpollCtl(f.ep, unix.EPOLL_CTL_DEL, int(fd), nil)
}

// run wakes the connections whose sockets are ready, until close.
func (p *poller) run() {
	defer close(p.done)
	events := make([]unix.EpollEvent, 128)
	for {
		n, err := unix.EpollWait(p.fd.ep, events, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			panic(fmt.Sprintf("edge: epoll_wait failed on the poller's own instance: %v", err))
		}
		for _, ev := range events[:n] {
			if int(ev.Fd) == p.fd.stop {
				return
			}
			if c := p.lookup(ev.Fd); c != nil {
				c.wake()
			}
		}
	}
}

// close stops the poller's goroutine and closes its descriptors. No
// connection may be parked.
func (p *poller) close() {
	var one = [8]byte{1}
	_, _ = unix.Write(p.fd.stop, one[:])
	<-p.done
	unix.Close(p.fd.ep)
	unix.Close(p.fd.stop)
}
