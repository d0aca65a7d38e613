package testenv

import (
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	binMu sync.Mutex
	bins  = map[testing.TB]string{}
)

// Binary builds cmd/clickfleet (with the race detector, like the tests, and with the crash points of
// internal/crashpoint compiled in) into a directory removed when the
// test ends, and returns its path; later calls in the same test return the same binary. The Go build cache
// makes every build after the first a link step.
func Binary(t testing.TB) string {
	t.Helper()
	binMu.Lock()
	defer binMu.Unlock()
	if bin, ok := bins[t]; ok {
		return bin
	}
	root, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		t.Fatalf("find the module root: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "clickfleet")
	cmd := exec.Command("go", "build", "-race", "-tags", "clickfleet_crashpoints", "-o", bin, "./cmd/clickfleet")
	cmd.Dir = strings.TrimSpace(string(root))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/clickfleet: %v\n%s", err, out)
	}
	bins[t] = bin
	t.Cleanup(func() {
		binMu.Lock()
		delete(bins, t)
		binMu.Unlock()
	})
	return bin
}
