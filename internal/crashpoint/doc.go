// Package crashpoint lets process tests kill a clickfleet binary at a named point of its work, as
// kill -9 would, without a flag or a variable in the production binary.
//
// A production build (no build tag) compiles At to return nil: no crash point exists and nothing reads
// the environment. A test binary built with `-tags clickfleet_crashpoints` (internal/testenv.Binary
// builds that way) reads CLICKFLEET_CRASHPOINT once, a comma-separated list of name:N, and the function
// At(name) returns exits the process with status 137 on its Nth call.
//
// Code that offers a crash point calls At once, at construction, and calls the function it got, when not
// nil, at the point:
//
//	crash := crashpoint.At(crashpoint.AfterFlush)
//	…
//	if crash != nil {
//		crash()
//	}
//
// It is for tests only; it is not a fault-injection framework.
package crashpoint

// Names of the crash points the code offers.
const (
	// AfterFlush is reached by the actors after a flush's writes and before its checkpoint.
	AfterFlush = "after-flush"
	// AfterPut is reached by the archive after an object's PUTs and before its checkpoint.
	AfterPut = "after-put"
)

// Env is the variable a crash-point build reads: name:N[,name:N…].
const Env = "CLICKFLEET_CRASHPOINT"
