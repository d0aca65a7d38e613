//go:build !clickfleet_crashpoints

package crashpoint_test

import (
	"testing"

	"github.com/clickfleet/clickfleet/internal/crashpoint"
)

// A build without the tag (every production build) has no crash points, whatever the environment says:
// every point, armed or not, is nil, and a spec that a crash-point build would reject (it exits 2 on it)
// is not even read. A tagged build has no such guarantee to check; TestOnWithTheTag covers it.
func TestOffWithoutTheTag(t *testing.T) {
	for _, tc := range []struct{ name, spec string }{
		{"armed at the first call", crashpoint.AfterFlush + ":1," + crashpoint.AfterPut + ":1"},
		{"malformed", "after-flush:0,nonsense"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(crashpoint.Env, tc.spec)
			for _, name := range []string{crashpoint.AfterFlush, crashpoint.AfterPut, "unarmed"} {
				if crash := crashpoint.At(name); crash != nil {
					t.Errorf("%s=%q: At(%q) is a crash point in a build without the clickfleet_crashpoints tag", crashpoint.Env, tc.spec, name)
				}
			}
		})
	}
}
