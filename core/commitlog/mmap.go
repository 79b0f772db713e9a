package commitlog

import (
	"fmt"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// mapping is one mmap'd region, reference counted: the owner holds one
// reference and each outstanding View holds one. The region is unmapped when
// the last reference goes, so a reader's bytes stay valid even if the
// segment is deleted or unmapped for idleness in the meantime.
type mapping struct {
	data []byte
	refs atomic.Int32
}

// mapFile maps length bytes of f. The length may exceed the file's size (an
// active segment is mapped at its full capacity up front so the mapping
// never moves); only bytes below the file's size may be touched.
func mapFile(f *os.File, length int, writable bool) (*mapping, error) {
	if length <= 0 {
		return &mapping{}, nil
	}
	prot := unix.PROT_READ
	if writable {
		prot |= unix.PROT_WRITE
	}
	data, err := unix.Mmap(int(f.Fd()), 0, length, prot, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("cannot mmap %s: %w", f.Name(), err)
	}
	m := &mapping{data: data}
	m.refs.Store(1)
	return m, nil
}

// mapAnon maps length bytes of zeroed anonymous memory, read-write: the
// active segment's indexes until they have files (segment.persistIndexes).
// Pages are allocated as they are first written.
func mapAnon(length int) (*mapping, error) {
	if length <= 0 {
		return &mapping{}, nil
	}
	data, err := unix.Mmap(-1, 0, length, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		return nil, fmt.Errorf("cannot mmap %d bytes of memory: %w", length, err)
	}
	m := &mapping{data: data}
	m.refs.Store(1)
	return m, nil
}

func (m *mapping) acquire() { m.refs.Add(1) }

func (m *mapping) release() {
	if m == nil || m.data == nil {
		return
	}
	switch n := m.refs.Add(-1); {
	case n == 0:
		_ = unix.Munmap(m.data)
		m.data = nil
	case n < 0:
		panic("commitlog: mapping released more often than acquired")
	}
}

// reserve makes sure bytes [0, size) of f are allocated on disk, so writes
// below size cannot fail for want of space and pages mapped below size never
// raise SIGBUS. A full disk is an error here, before anything is written.
func reserve(f *os.File, size int64) error {
	err := unix.Fallocate(int(f.Fd()), 0, 0, size)
	if err == unix.EOPNOTSUPP || err == unix.ENOSYS {
		// No fallocate on this file system: extending the file at least
		// keeps mapped reads below size from faulting.
		fi, serr := f.Stat()
		if serr != nil {
			return serr
		}
		if fi.Size() < size {
			return f.Truncate(size)
		}
		return nil
	}
	if err != nil {
		return &os.PathError{Op: "fallocate", Path: f.Name(), Err: err}
	}
	return nil
}

// zeroRange makes bytes [off, off+n) of f read as zeros without changing its
// size, so stale batches past a truncation point can never be recovered.
func zeroRange(f *os.File, off, n int64) error {
	if n <= 0 {
		return nil
	}
	err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
	if err == nil {
		return nil
	}
	if err != unix.EOPNOTSUPP && err != unix.ENOSYS {
		return &os.PathError{Op: "fallocate punch", Path: f.Name(), Err: err}
	}
	zeros := make([]byte, 64<<10)
	for n > 0 {
		c := min(n, int64(len(zeros)))
		if _, err := f.WriteAt(zeros[:c], off); err != nil {
			return err
		}
		off += c
		n -= c
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

var errNoSpace = unix.ENOSPC
