package txn

import (
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"
)

// Config configures a Coordinator.
type Config struct {
	// MaxTimeout is the largest transaction timeout a producer may ask
	// for (Kafka's transaction.max.timeout.ms); InitProducerID with a
	// larger one gets INVALID_TRANSACTION_TIMEOUT.
	MaxTimeout time.Duration
	// AbortCheckInterval is how often transactions past their timeout are
	// looked for and aborted (transaction.abort.timed.out.transaction.cleanup.interval.ms).
	AbortCheckInterval time.Duration
	// IDExpiration is how long a transactional id may go without a
	// transaction before it is forgotten (Kafka's
	// transactional.id.expiration.ms): its state gets a tombstone.
	IDExpiration time.Duration
	// ExpireCheckInterval is how often expired transactional ids are
	// looked for (Kafka's
	// transactions.remove.expired.transaction.cleanup.interval.ms).
	ExpireCheckInterval time.Duration
	// MarkerRetry is the pause before writing markers again to partitions
	// whose leader could not take them.
	MarkerRetry time.Duration
	// EndWait bounds how long EndTxn and InitProducerID wait for the
	// markers of the transaction they end; past it they answer and the
	// markers keep being written in the background.
	EndWait time.Duration
	// Logger receives the coordinator's logs. Zero value: none.
	Logger zerolog.Logger
	// Now returns the time; nil means time.Now. Tests move it.
	Now func() time.Time
}

// DefaultConfig returns Kafka's defaults.
func DefaultConfig() Config {
	return Config{
		MaxTimeout:          15 * time.Minute,
		AbortCheckInterval:  10 * time.Second,
		IDExpiration:        7 * 24 * time.Hour,
		ExpireCheckInterval: time.Hour,
		MarkerRetry:         100 * time.Millisecond,
		EndWait:             10 * time.Second,
		Logger:              zerolog.Nop(),
	}
}

// Validate reports the first field of c that cannot work.
func (c Config) Validate() error {
	switch {
	case c.MaxTimeout <= 0:
		return fmt.Errorf("txn: max timeout %s is not positive", c.MaxTimeout)
	case c.AbortCheckInterval <= 0:
		return fmt.Errorf("txn: abort check interval %s is not positive", c.AbortCheckInterval)
	case c.IDExpiration <= 0:
		return fmt.Errorf("txn: transactional id expiration %s is not positive", c.IDExpiration)
	case c.ExpireCheckInterval <= 0:
		return fmt.Errorf("txn: expiration check interval %s is not positive", c.ExpireCheckInterval)
	case c.MarkerRetry <= 0:
		return fmt.Errorf("txn: marker retry %s is not positive", c.MarkerRetry)
	case c.EndWait < 0:
		return errors.New("txn: end wait is negative")
	}
	return nil
}
