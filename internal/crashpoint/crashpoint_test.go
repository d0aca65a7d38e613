package crashpoint_test

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/clickfleet/clickfleet/internal/crashpoint"
)

// With the tag, the Nth call of an armed point exits 137 and an unarmed point is nil.
func TestOnWithTheTag(t *testing.T) {
	if os.Getenv("CRASHPOINT_CHILD") == "1" {
		if crashpoint.At("unarmed") != nil {
			os.Exit(3)
		}
		crash := crashpoint.At(crashpoint.AfterPut)
		crash()
		crash()
		os.Exit(0) // not reached when armed with 2
	}
	cmd := exec.Command("go", "test", "-tags", "clickfleet_crashpoints", "-run", "^TestOnWithTheTag$", "-count=1", ".")
	cmd.Env = append(os.Environ(), "CRASHPOINT_CHILD=1", crashpoint.Env+"="+crashpoint.AfterPut+":2")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("the armed child test ended with %v, want a failure from exit 137\n%s", err, out)
	}
	if !strings.Contains(string(out), "crash point after-put reached (call 2)") {
		t.Fatalf("the child did not reach the crash point:\n%s", out)
	}
}
