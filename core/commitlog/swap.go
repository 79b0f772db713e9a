package commitlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
)

// The cleaner replaces a group of sealed segments by one cleaned segment
// with a protocol that a crash at any step leaves as either the old
// segments or the new one, never both or neither:
//
//  1. The cleaned segment is written beside the old ones as
//     <base>.log.cleaned, <base>.index.cleaned and <base>.timeindex.cleaned
//     (and <base>.txnindex.cleaned when the group has a transaction
//     index), each fsynced. A crash here: Open deletes the .cleaned files.
//  2. The swap manifest (cleaner-swap) is written atomically (temporary
//     file, fsync, rename, directory fsync). This is the commit point: from
//     now on Open finishes the swap.
//  3. The old segments after the first are deleted and the .cleaned files
//     renamed over the first one's names (index files first, the log
//     last); the directory is fsynced. Every step is idempotent, so Open
//     simply does them again.
//  4. The cleaner checkpoint is raised to the manifest's cleaned-to offset,
//     then the manifest is removed.
//
// The manifest (big-endian):
//
//	+------+---+---------+---------+-------------+-------+--------------+--------+
//	| FXSW | 1 | newBase | next    | cleanedTo   | count | old bases    | crc32c |
//	| 4 B  |1 B| int64   | int64   | int64       | u32   | count × int64| u32    |
//	+------+---+---------+---------+-------------+-------+--------------+--------+
//
// newBase is the first old base; the old segments cover [newBase, next);
// the CRC32C covers everything before it.

const (
	swapFile         = "cleaner-swap"
	cleanerFile      = "cleaner-offset-checkpoint"
	cleanedSuffix    = ".cleaned"
	swapMagic        = "FXSW"
	swapVersion      = 1
	swapHeaderSize   = 4 + 1 + 8 + 8 + 8 + 4
	maxSwapSegments  = 1 << 16
	swapManifestSize = swapHeaderSize + 4
)

// swapPlan is what a swap replaces: the old segments by base, with the
// cleaned segment taking the first one's base.
type swapPlan struct {
	next      int64   // offset after the old segments' range
	cleanedTo int64   // cleaner checkpoint once the swap is done
	old       []int64 // bases of the old segments, ascending; old[0] is the new base
}

func encodeSwap(p swapPlan) []byte {
	b := make([]byte, 0, swapManifestSize+8*len(p.old))
	b = append(b, swapMagic...)
	b = append(b, swapVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(p.old[0]))
	b = binary.BigEndian.AppendUint64(b, uint64(p.next))
	b = binary.BigEndian.AppendUint64(b, uint64(p.cleanedTo))
	b = binary.BigEndian.AppendUint32(b, uint32(len(p.old)))
	for _, o := range p.old {
		b = binary.BigEndian.AppendUint64(b, uint64(o))
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

var errBadSwap = errors.New("commitlog: bad cleaner swap manifest")

// decodeSwap reads a swap manifest. It accepts exactly what encodeSwap
// writes for a sane plan: old bases ascending, non-negative, below next,
// next at most cleanedTo.
func decodeSwap(b []byte) (swapPlan, error) {
	if len(b) < swapManifestSize || string(b[:4]) != swapMagic || b[4] != swapVersion {
		return swapPlan{}, fmt.Errorf("%w: header", errBadSwap)
	}
	n := binary.BigEndian.Uint32(b[29:])
	if n == 0 || n > maxSwapSegments || len(b) != swapManifestSize+8*int(n) {
		return swapPlan{}, fmt.Errorf("%w: %d segments in %d bytes", errBadSwap, n, len(b))
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(b[len(b)-4:]) {
		return swapPlan{}, fmt.Errorf("%w: crc", errBadSwap)
	}
	base := int64(binary.BigEndian.Uint64(b[5:]))
	p := swapPlan{
		next:      int64(binary.BigEndian.Uint64(b[13:])),
		cleanedTo: int64(binary.BigEndian.Uint64(b[21:])),
		old:       make([]int64, n),
	}
	for i := range p.old {
		p.old[i] = int64(binary.BigEndian.Uint64(b[swapHeaderSize+8*i:]))
		if p.old[i] < 0 || (i > 0 && p.old[i] <= p.old[i-1]) || p.old[i] >= p.next {
			return swapPlan{}, fmt.Errorf("%w: segment bases out of order", errBadSwap)
		}
	}
	if p.old[0] != base || p.next > p.cleanedTo {
		return swapPlan{}, fmt.Errorf("%w: range", errBadSwap)
	}
	return p, nil
}

// swapHook, when set by a test, is called at every step of a swap; an
// error stops the swap there, as a crash would.
var swapHook func(step string) error

func swapStep(step string) error {
	if swapHook != nil {
		return swapHook(step)
	}
	return nil
}

// applySwap does step 3 of the protocol for plan: deletes the old segments
// after the first and renames the cleaned files into place. Idempotent.
func applySwap(dir string, p swapPlan) error {
	for _, base := range p.old[1:] {
		lp, ip, tp := segmentPaths(dir, base)
		for _, path := range []string{ip, tp, txnPathFor(lp), lp} {
			if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
			if err := swapStep("remove " + filepath.Base(path)); err != nil {
				return err
			}
		}
	}
	lp, ip, tp := segmentPaths(dir, p.old[0])
	for _, path := range []string{ip, tp, txnPathFor(lp), lp} {
		err := os.Rename(path+cleanedSuffix, path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if err := swapStep("rename " + filepath.Base(path)); err != nil {
			return err
		}
	}
	return syncDir(dir)
}

// commitSwap does steps 2 to 4 once the cleaned files are written and
// fsynced. Called with syncMu and appendMu held.
func (l *Log) commitSwap(p swapPlan) error {
	if err := writeFileAtomic(filepath.Join(l.dir, swapFile), encodeSwap(p)); err != nil {
		return fmt.Errorf("commitlog: cannot write swap manifest: %w", err)
	}
	if err := swapStep("manifest"); err != nil {
		return err
	}
	if err := applySwap(l.dir, p); err != nil {
		return fmt.Errorf("commitlog: swap: %w", err)
	}
	return l.endSwap(p)
}

// endSwap is step 4: the checkpoint, then the manifest goes.
func (l *Log) endSwap(p swapPlan) error {
	if p.cleanedTo > l.cleanedTo.Load() {
		if err := writeFileAtomic(filepath.Join(l.dir, cleanerFile), encodeOffset(p.cleanedTo)); err != nil {
			return fmt.Errorf("commitlog: cannot write cleaner checkpoint: %w", err)
		}
		l.cleanedTo.Store(p.cleanedTo)
	}
	if err := swapStep("checkpoint"); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(l.dir, swapFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("commitlog: cannot remove swap manifest: %w", err)
	}
	if err := swapStep("manifest removed"); err != nil {
		return err
	}
	return syncDir(l.dir)
}

// recoverSwap runs at Open, before the segments are listed: it reads the
// cleaner checkpoint, finishes a committed swap, and deletes the files of
// an uncommitted one.
func (l *Log) recoverSwap() error {
	if off, ok := readOffsetFile(filepath.Join(l.dir, cleanerFile)); ok {
		l.cleanedTo.Store(off)
	}
	data, err := os.ReadFile(filepath.Join(l.dir, swapFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("commitlog: %w", err)
	default:
		p, derr := decodeSwap(data)
		if derr != nil {
			if leftovers, _ := filepath.Glob(filepath.Join(l.dir, "*"+cleanedSuffix)); len(leftovers) > 0 {
				return fmt.Errorf("%w: %v, with cleaned segments waiting", ErrCorrupt, derr)
			}
			l.log.Warn().Err(derr).Msg("removing unreadable swap manifest of a finished swap")
		} else {
			if err := applySwap(l.dir, p); err != nil {
				return fmt.Errorf("commitlog: cannot finish swap: %w", err)
			}
			if err := l.endSwap(p); err != nil {
				return err
			}
			l.log.Info().Int64("segment", p.old[0]).Int("replaced", len(p.old)).Msg("finished interrupted cleaner swap")
		}
		if err := os.Remove(filepath.Join(l.dir, swapFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("commitlog: %w", err)
		}
	}
	entries, err := os.ReadDir(l.dir)
	if err != nil {
		return fmt.Errorf("commitlog: %w", err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), cleanedSuffix) {
			if err := os.Remove(filepath.Join(l.dir, e.Name())); err != nil {
				return fmt.Errorf("commitlog: %w", err)
			}
			l.log.Info().Str("file", e.Name()).Msg("removed cleaned file of an uncommitted swap")
		}
	}
	return nil
}
