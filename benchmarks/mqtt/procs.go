package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is a child process: a fluxo core or edge, a bare mochi server or
// Mosquitto.
type proc struct {
	name    string
	cmd     *exec.Cmd
	exited  chan struct{} // closed once cmd.Wait returns
	waitErr error         // set before exited is closed
	grace   time.Duration // how long Stop waits after SIGTERM
}

// startProc starts bin with args; its output goes to this process's
// stderr. Should this process die without stopping it, the kernel kills
// it (Pdeathsig).
func startProc(name string, grace time.Duration, bin string, args ...string) (*proc, error) {
	cmd := exec.Command(bin, args...)
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, exited: make(chan struct{}), grace: grace}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// Stop sends SIGTERM and waits for the process to exit; if it has not
// after its grace period or ctx ends first, it is killed.
func (p *proc) Stop(ctx context.Context) error {
	select {
	case <-p.exited:
		return fmt.Errorf("%s had already exited: %v", p.name, p.waitErr)
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	timer := time.NewTimer(p.grace)
	defer timer.Stop()
	select {
	case <-p.exited:
		return p.waitErr
	case <-timer.C:
	case <-ctx.Done():
	}
	// A Go program prints its goroutines' stacks on SIGQUIT: they show
	// where the shutdown hangs.
	p.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-p.exited:
	case <-time.After(3 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
	return fmt.Errorf("%w: %s, %v after SIGTERM", errKilled, p.name, p.grace)
}

// errKilled means a process did not exit on SIGTERM within its grace
// period and was stopped with SIGQUIT (stacks on stderr) or SIGKILL.
var errKilled = errors.New("did not stop after SIGTERM; killed")

// waitHTTP polls url until it answers 200, the process exits, ctx ends or
// 30 s pass.
func waitHTTP(ctx context.Context, p *proc, url string) error {
	return waitUntil(ctx, p, func(ctx context.Context) bool {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false
		}
		resp, err := httpClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// waitTCP waits until addr accepts connections.
func waitTCP(ctx context.Context, p *proc, addr string) error {
	return waitUntil(ctx, p, func(ctx context.Context) bool {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

func waitUntil(ctx context.Context, p *proc, ready func(context.Context) bool) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if ready(ctx) {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited before it was ready: %v", p.name, p.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w", p.name, ctx.Err())
		case <-tick.C:
		}
	}
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

// clockTicks is USER_HZ, the unit of the times in /proc/<pid>/stat: 100
// on every Linux architecture Go supports.
const clockTicks = 100

// cpuTime returns the user plus system CPU time pid has used so far
// (pid 0: this process), from /proc.
func cpuTime(pid int) (time.Duration, error) {
	path := "/proc/self/stat"
	if pid != 0 {
		path = "/proc/" + strconv.Itoa(pid) + "/stat"
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return 0, errors.New("unexpected " + path)
	}
	f := strings.Fields(string(data[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, errors.New("unexpected " + path)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}
