package testenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A prebuilt binary that is not cmd/clickfleet with Binary's flags is refused, naming what it is: the
// test binary itself, built without the tags, stands in for one.
func TestPrebuiltBinaryOfOtherFlagsIsRefused(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	err = checkPrebuilt(self)
	if err == nil || !strings.Contains(err.Error(), "want cmd/clickfleet built with -race -tags clickfleet_crashpoints") {
		t.Fatalf("checkPrebuilt(the test binary) = %v, want a refusal naming the flags", err)
	}
}

// The staleness check finds a Go file (or go.mod, go.sum) changed after the binary — not a test, which
// is not in it — and looks neither into hidden directories (the stacks' data) nor into node_modules.
func TestNewerGoFile(t *testing.T) {
	root := t.TempDir()
	built := time.Now().Add(-time.Hour)
	write := func(rel string, mod time.Time) {
		t.Helper()
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mod, mod); err != nil {
			t.Fatal(err)
		}
	}
	write("a/old.go", built.Add(-time.Minute))
	write(".stack-test/x/new.go", built.Add(time.Minute))
	write("deploy/local/node_modules/m/new.go", built.Add(time.Minute))
	write("a/notes.md", built.Add(time.Minute))
	write("a/new_test.go", built.Add(time.Minute))
	for _, c := range []struct{ add, want string }{{"", ""}, {"go.sum", "go.sum"}, {"b/c/new.go", "b/c/new.go"}} {
		if c.add != "" {
			write(c.add, built.Add(time.Minute))
		}
		got, err := newerGoFile(root, built.UnixNano())
		if err != nil {
			t.Fatal(err)
		}
		if want := filepath.Join(root, c.want); (c.want == "" && got != "") || (c.want != "" && got != want) {
			t.Fatalf("after adding %q: newerGoFile = %q, want %q", c.add, got, c.want)
		}
		if c.add != "" {
			if err := os.Remove(filepath.Join(root, c.add)); err != nil {
				t.Fatal(err)
			}
		}
	}
}
