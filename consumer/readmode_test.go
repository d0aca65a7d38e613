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

// config sets an in-process worker's read mode.
func (rm readMode) config(cfg *consumer.Config) {
	cfg.ReadMode = rm.mode
	if rm.fanOut != nil {
		cfg.FanOut = rm.fanOut
	}
}

// flags are a worker process's read-mode flags (the endpoint and certificate come from the stack's env).
func (rm readMode) flags() []string { return []string{"--read-mode", string(rm.mode)} }
