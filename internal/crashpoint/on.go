//go:build clickfleet_crashpoints

package crashpoint

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

var (
	parseOnce sync.Once
	armed     map[string]int64
)

func parse() {
	armed = map[string]int64{}
	spec := os.Getenv(Env)
	for _, part := range strings.Split(spec, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		name, n, ok := strings.Cut(part, ":")
		count, err := strconv.ParseInt(n, 10, 64)
		if !ok || err != nil || count <= 0 {
			fmt.Fprintf(os.Stderr, "%s=%q: %q is not name:N with N > 0\n", Env, spec, part)
			os.Exit(2)
		}
		armed[name] = count
	}
}

// At returns a function that exits the process with status 137 on its Nth call when CLICKFLEET_CRASHPOINT
// arms name with N, or nil when it does not. The returned function is safe for concurrent use.
func At(name string) func() {
	parseOnce.Do(parse)
	n, ok := armed[name]
	if !ok {
		return nil
	}
	var calls atomic.Int64
	return func() {
		if calls.Add(1) == n {
			fmt.Fprintf(os.Stderr, "crash point %s reached (call %d): exiting with status 137\n", name, n)
			os.Exit(137)
		}
	}
}
