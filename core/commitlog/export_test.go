package commitlog

import "bytes"

// What the external tests (package commitlog_test) use of the package's
// insides.

// Crash stops l the way a killed process stops: the files are left as
// they are, nothing flushed or cut.
func Crash(l *Log) { l.release() }

// RandomBatch is a batch of 1 to 8 random records at timestamp ts, with a
// random leader epoch.
var RandomBatch = randomBatch

// The checkpoint files, and the recovery point's encoding.
const (
	RecoveryPointFile = recoveryPointFile
	EpochFile         = epochFile
)

// EncodeOffset is the content of an offset checkpoint holding off.
var EncodeOffset = encodeOffset

// EqualMaskingEpoch compares two batches except for the partition leader
// epoch: the format leaves it outside the CRC (a leader stamps it), so a
// flipped epoch byte in an unsynced tail is undetectable by design.
func EqualMaskingEpoch(a, b []byte) bool {
	if len(a) != len(b) || len(a) < HeaderSize {
		return false
	}
	return bytes.Equal(a[:offLeaderEpoch], b[:offLeaderEpoch]) && bytes.Equal(a[offMagic:], b[offMagic:])
}
