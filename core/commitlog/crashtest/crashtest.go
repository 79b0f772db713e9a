// Package crashtest simulates what a crash and a power cut do to a
// segment log's files, and checks what the log gives back after it
// recovered. The log's storage property test and `fluxo demo crash` are
// both built on it.
//
// A crash loses nothing the kernel already has; a power cut may also lose
// or damage what was written after the last fsync, and only that: the
// batches of a segment file that end at or below the durable offset
// (commitlog.Log.DurableOffset) are never touched here.
package crashtest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"

	"github.com/fluxo-io/fluxo/core/commitlog"
)

// Region is the part of one segment file written after the last fsync:
// bytes [From, To) of Path, To its size. Written is where the last batch
// whose header parses ends (the rest is space reserved ahead, or junk).
type Region struct {
	Path     string
	From, To int64
	Written  int64
}

// Unsynced returns the unsynced region of each segment log in dir that has
// one, in segment order: the bytes after the whole batches that end at or
// below durable.
func Unsynced(dir string, durable int64) ([]Region, error) {
	logs, err := segments(dir)
	if err != nil {
		return nil, err
	}
	var out []Region
	for _, p := range logs {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("crashtest: %w", err)
		}
		pos := int64(0)
		for pos < int64(len(data)) {
			b, err := commitlog.ParseHeader(data[pos:])
			if err != nil || b.NextOffset() > durable {
				break
			}
			pos += int64(b.Size)
		}
		if pos < int64(len(data)) {
			g := Region{Path: p, From: pos, To: int64(len(data)), Written: pos}
			for g.Written < g.To {
				b, err := commitlog.ParseHeader(data[g.Written:])
				if err != nil || b.BaseOffset < 0 {
					break
				}
				g.Written += int64(b.Size)
			}
			out = append(out, g)
		}
	}
	return out, nil
}

// segments lists the segment logs of dir in order.
func segments(dir string) ([]string, error) {
	logs, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil {
		return nil, fmt.Errorf("crashtest: %w", err)
	}
	sort.Strings(logs)
	return logs, nil
}

// Kind is the kind of damage a power cut did.
type Kind int

// The kinds of damage.
const (
	None    Kind = iota // every unsynced write made it
	Cut                 // the file ends at a random unsynced byte
	Flip                // unsynced bytes flipped
	Garbage             // a torn sector: random bytes over unsynced data
)

func (k Kind) String() string {
	switch k {
	case None:
		return "none"
	case Cut:
		return "cut"
	case Flip:
		return "flip"
	case Garbage:
		return "garbage"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Damage says what a simulated power cut did.
type Damage struct {
	Kind    Kind
	Region  Region // the unsynced region damaged (zero for None)
	At      int64  // a Cut's new file size, or where the garbage starts
	Flipped int    // bytes flipped
	Removed int    // later segment files removed with a Cut
}

// PowerCut damages the unsynced regions of the segment logs in dir as a
// power cut may, choosing at random: nothing, a cut at a random byte
// (with the later segment files lost, at random), one to five flipped
// bytes, or a torn sector of garbage.
func PowerCut(r *rand.Rand, dir string, durable int64) (Damage, error) {
	vol, err := Unsynced(dir, durable)
	if err != nil || len(vol) == 0 {
		return Damage{}, err
	}
	switch r.IntN(4) {
	case 0:
		g := vol[r.IntN(len(vol))]
		d := Damage{Kind: Cut, Region: g, At: g.From + r.Int64N(g.To-g.From+1)}
		if err := os.Truncate(g.Path, d.At); err != nil {
			return d, fmt.Errorf("crashtest: %w", err)
		}
		if r.IntN(2) == 0 {
			logs, err := segments(dir)
			if err != nil {
				return d, err
			}
			for _, p := range logs {
				if p > g.Path && os.Remove(p) == nil {
					d.Removed++
				}
			}
		}
		return d, nil
	case 1:
		d := Damage{Kind: Flip}
		for k := 1 + r.IntN(5); k > 0; k-- {
			g := vol[r.IntN(len(vol))]
			if g.To > g.From {
				if err := FlipByte(g.Path, g.From+r.Int64N(g.To-g.From), byte(1+r.IntN(255))); err != nil {
					return d, err
				}
				d.Region = g
				d.Flipped++
			}
		}
		return d, nil
	case 2:
		g := vol[r.IntN(len(vol))]
		if g.To == g.From {
			return Damage{}, nil
		}
		d := Damage{Kind: Garbage, Region: g, At: g.From + r.Int64N(g.To-g.From)}
		junk := make([]byte, 1+r.IntN(512))
		for i := range junk {
			junk[i] = byte(r.Uint32())
		}
		return d, writeAt(g.Path, junk[:min(int64(len(junk)), g.To-d.At)], d.At)
	}
	return Damage{}, nil
}

// CutTail is the power cut of `fluxo demo crash`: the newest segment is
// cut at a random byte of the batches written after the durable data, and
// flips bytes between the durable data and the cut are flipped. With
// nothing unsynced written in the newest segment it does nothing (Kind
// None).
func CutTail(r *rand.Rand, dir string, durable int64, flips int) (Damage, error) {
	logs, err := segments(dir)
	if err != nil {
		return Damage{}, err
	}
	if len(logs) == 0 {
		return Damage{}, fmt.Errorf("crashtest: no segments in %s", dir)
	}
	vol, err := Unsynced(dir, durable)
	if err != nil {
		return Damage{}, err
	}
	newest := logs[len(logs)-1]
	if len(vol) == 0 || vol[len(vol)-1].Path != newest {
		return Damage{Region: Region{Path: newest}}, nil
	}
	g := vol[len(vol)-1]
	if g.Written <= g.From {
		return Damage{Region: g}, nil
	}
	d := Damage{Kind: Cut, Region: g, At: g.From + r.Int64N(g.Written-g.From)}
	if err := os.Truncate(g.Path, d.At); err != nil {
		return d, fmt.Errorf("crashtest: %w", err)
	}
	if d.At > g.From {
		for range flips {
			if err := FlipByte(g.Path, g.From+r.Int64N(d.At-g.From), byte(1+r.IntN(255))); err != nil {
				return d, err
			}
			d.Flipped++
		}
	}
	return d, nil
}

// FlipByte XORs the byte at offset at of path with mask.
func FlipByte(path string, at int64, mask byte) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("crashtest: %w", err)
	}
	defer f.Close()
	var b [1]byte
	if _, err := f.ReadAt(b[:], at); err != nil {
		return fmt.Errorf("crashtest: %w", err)
	}
	b[0] ^= mask
	if _, err := f.WriteAt(b[:], at); err != nil {
		return fmt.Errorf("crashtest: %w", err)
	}
	return nil
}

func writeAt(path string, b []byte, at int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("crashtest: %w", err)
	}
	_, err = f.WriteAt(b, at)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("crashtest: %w", err)
	}
	return nil
}

// ErrBadLog is what ReadAll returns when the log gives back something it
// must not: a batch that does not validate, or a gap in the offsets.
var ErrBadLog = errors.New("crashtest: the recovered log is wrong")

// ReadAll reads l from its log start to its high watermark and returns a
// copy of every batch, checking that each is valid and that offsets
// continue without gaps.
func ReadAll(l *commitlog.Log) ([][]byte, error) {
	var out [][]byte
	next := l.LogStartOffset()
	for off := next; off < l.HighWatermark(); {
		v, err := l.Read(off, 1<<20)
		if err != nil {
			return nil, fmt.Errorf("crashtest: read %d: %w", off, err)
		}
		if len(v.Data) == 0 {
			v.Release()
			return nil, fmt.Errorf("%w: read %d: empty below the high watermark %d", ErrBadLog, off, l.HighWatermark())
		}
		var bad error
		err = commitlog.Batches(v.Data, func(b commitlog.Batch, raw []byte) bool {
			if _, err := commitlog.ValidateBatch(raw); err != nil {
				bad = fmt.Errorf("%w: batch %d at offset %d returned corrupt: %w", ErrBadLog, len(out), b.BaseOffset, err)
				return false
			}
			if b.BaseOffset != next {
				bad = fmt.Errorf("%w: batch %d: got offset %d, want %d (gap)", ErrBadLog, len(out), b.BaseOffset, next)
				return false
			}
			next = b.NextOffset()
			out = append(out, append([]byte(nil), raw...))
			return true
		})
		off = v.Next
		v.Release()
		if err == nil {
			err = bad
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
