package consumer_test

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/clickfleet/clickfleet/consumer"
	"github.com/clickfleet/clickfleet/internal/testenv"
)

// readMode is a read mode the exactly-once tests run in: polling, or enhanced fan-out through the
// stack's proxy in front of kinesis-mock (skipped on kinesalite, which has no SubscribeToShard).
type readMode struct {
	mode   consumer.ReadMode
	fanOut *kinesis.Client // efo only
}

// forEachReadMode runs test once per read mode, as subtests named after them.
func forEachReadMode(t *testing.T, test func(t *testing.T, rm readMode)) {
	for _, mode := range []consumer.ReadMode{consumer.Polling, consumer.EFO} {
		t.Run(string(mode), func(t *testing.T) {
			rm := readMode{mode: mode}
			if mode == consumer.EFO {
				rm.fanOut = testenv.KinesisFanOut(t)
			}
			test(t, rm)
		})
	}
}

// rate is the records/s a fleet test produces in this read mode, given polling's. In efo a fifth: the
// stack's fan-out server (kinesis-mock) wakes each subscription once a second and reads its shard's
// whole record list again, so its CPU grows with every record stored; at polling's rates over a
// test of minutes it starves on a shared machine and a restarted worker's first fan-out calls take
// longer than the test's balance deadline. The property under test does not depend on the rate.
func (rm readMode) rate(polling float64) float64 {
	if rm.mode == consumer.EFO {
		return polling / 5
	}
	return polling
}

// config sets an in-process worker's read mode.
func (rm readMode) config(cfg *consumer.Config) {
	cfg.ReadMode = rm.mode
	if rm.fanOut != nil {
		cfg.FanOut = rm.fanOut
	}
}

// flags are a worker process's read-mode flags (the endpoint and certificate come from the stack's env).
func (rm readMode) flags() []string { return []string{"--read-mode", string(rm.mode)} }
