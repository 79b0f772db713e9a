// Package proc runs the child processes of the benchmark programs (fluxo
// nodes, baseline servers, peers) and reads what /proc says about them.
package proc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Proc is a child process: a fluxo core or edge, a bare mochi server,
// Mosquitto or a peer.
type Proc struct {
	Name    string
	cmd     *exec.Cmd
	exited  chan struct{} // closed once cmd.Wait returns
	waitErr error         // set before exited is closed
	grace   time.Duration // how long Stop waits after SIGTERM
}

// Start starts bin with args; its output goes to this process's
// stderr. Should this process die without stopping it, the kernel kills
// it (Pdeathsig).
func Start(name string, grace time.Duration, bin string, args ...string) (*Proc, error) {
	return StartTo(os.Stderr, name, grace, bin, args...)
}

// StartTo is Start with the process's stdout and stderr going to out.
func StartTo(out io.Writer, name string, grace time.Duration, bin string, args ...string) (*Proc, error) {
	cmd := exec.Command(bin, args...)
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, cmd: cmd, exited: make(chan struct{}), grace: grace}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// PID is the process id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Stop sends SIGTERM and waits for the process to exit; if it has not
// after its grace period or ctx ends first, it is killed.
func (p *Proc) Stop(ctx context.Context) error {
	select {
	case <-p.exited:
		return fmt.Errorf("%s had already exited: %v", p.Name, p.waitErr)
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
	return fmt.Errorf("%w: %s, %v after SIGTERM", ErrKilled, p.Name, p.grace)
}

// ErrKilled means a process did not exit on SIGTERM within its grace
// period and was stopped with SIGQUIT (stacks on stderr) or SIGKILL.
var ErrKilled = errors.New("did not stop after SIGTERM; killed")

// WaitHTTP polls url until it answers 200, the process exits, ctx ends or
// 30 s pass.
func WaitHTTP(ctx context.Context, p *Proc, url string) error {
	return waitUntil(ctx, p, func(ctx context.Context) bool {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false
		}
		resp, err := HTTPClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// WaitTCP waits until addr accepts connections.
func WaitTCP(ctx context.Context, p *Proc, addr string) error {
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

func waitUntil(ctx context.Context, p *Proc, ready func(context.Context) bool) error {
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
			return fmt.Errorf("%s exited before it was ready: %v", p.Name, p.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w", p.Name, ctx.Err())
		case <-tick.C:
		}
	}
}

// HTTPClient is the client of every readiness and metrics request.
var HTTPClient = &http.Client{Timeout: 5 * time.Second}

// clockTicks is USER_HZ, the unit of the times in /proc/<pid>/stat: 100
// on every Linux architecture Go supports.
const clockTicks = 100

// CPUTime returns the user plus system CPU time pid has used so far
// (pid 0: this process), from /proc.
func CPUTime(pid int) (time.Duration, error) {
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

// Mem is a process's memory from /proc/{pid}/status, in bytes:
// resident (VmRSS), of which anonymous (RssAnon: the Go heap, stacks) and
// file pages mapped (RssFile: the binary, bbolt's mmap).
type Mem struct{ RSS, Anon, File int64 }

// ReadMem reads pid's Mem.
func ReadMem(pid int) (Mem, error) {
	var m Mem
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return m, err
	}
	found := 0
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var dst *int64
		switch k {
		case "VmRSS":
			dst = &m.RSS
		case "RssAnon":
			dst = &m.Anon
		case "RssFile":
			dst = &m.File
		default:
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		if err != nil {
			return m, fmt.Errorf("rss: %q: %w", line, err)
		}
		*dst = kb << 10
		found++
	}
	if found < 3 {
		return m, errors.New("rss: no VmRSS, RssAnon and RssFile in /proc/" + strconv.Itoa(pid) + "/status")
	}
	return m, nil
}

// Exited is closed once the process has exited.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// Kill sends SIGKILL and waits for the process to exit.
func (p *Proc) Kill() {
	p.cmd.Process.Kill()
	<-p.exited
}

// OpenFiles counts pid's open file descriptors (the entries of
// /proc/{pid}/fd).
func OpenFiles(pid int) (int, error) {
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		return 0, err
	}
	return len(ents), nil
}
