package countcheck_test

import (
	"maps"
	"testing"
	"time"

	"github.com/clickfleet/clickfleet/internal/countcheck"
	"github.com/clickfleet/clickfleet/internal/testenv"
)

// A producer stopped mid-load leaves a final tally: after stop, what the stream holds is exactly what
// the sink counted (a put under way when stop came is stored and counted, not cut off).
func TestProduceUntilStopsWithAFinalTally(t *testing.T) {
	kin := testenv.Kinesis(t)
	stream := testenv.Stream(t, kin, 2)
	sink, stop := countcheck.ProduceUntil(t, kin, stream, 20, 800, 1)
	total := func() (n int64) {
		for _, c := range sink.Stored() {
			n += c
		}
		return n
	}
	// More than clickgen's default count: the producer runs until stop, not until a count.
	testenv.WaitFor(t, "1,200 records stored", 60*time.Second, func() bool { return total() >= 1200 })
	stop()
	stored := sink.Stored()
	onStream := countcheck.OnStream(t, kin, stream, stored)
	if !maps.Equal(onStream, stored) {
		t.Fatalf("the stream holds %v, the producer tallied %v", onStream, stored)
	}
}
