package testenv

import (
	"testing"

	"github.com/clickfleet/clickfleet/internal/faults"
)

// AWSFaultLayer starts a fault layer (internal/faults) in front of the AWS endpoint upstream, its faults
// drawn from seed, on a local port of its own, and closes it when the test ends. It returns the layer and
// the endpoint URL that reaches upstream through it.
func AWSFaultLayer(t testing.TB, upstream string, seed uint64) (*faults.AWSLayer, string) {
	t.Helper()
	l, err := faults.NewAWSLayer(upstream, seed)
	if err != nil {
		t.Fatal(err)
	}
	addr, err := l.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l, "http://" + addr
}
