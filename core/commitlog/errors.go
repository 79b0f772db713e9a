package commitlog

import "errors"

var (
	// ErrInvalidBatch marks input that is not a well-formed RecordBatch v2.
	// Nothing of a rejected Append is written.
	ErrInvalidBatch = errors.New("commitlog: invalid record batch")

	// ErrBatchTooLarge is returned for a batch over Config.MaxBatchBytes.
	ErrBatchTooLarge = errors.New("commitlog: record batch too large")

	// ErrCorrupt marks damage to data the log had already made durable
	// (below the recovery point). The log refuses to open rather than cut
	// acknowledged data; torn tails above the recovery point are repaired
	// silently (logged and counted), not reported with this error.
	ErrCorrupt = errors.New("commitlog: corrupt")

	// ErrOffsetOutOfRange is returned for reads and lookups outside
	// [log start, log end].
	ErrOffsetOutOfRange = errors.New("commitlog: offset out of range")

	// ErrClosed is returned by every method once Close has been called.
	ErrClosed = errors.New("commitlog: closed")
)
