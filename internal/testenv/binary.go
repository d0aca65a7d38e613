package testenv

import (
	"debug/buildinfo"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// BinaryEnv names a clickfleet binary built beforehand with Binary's flags (`go build -race -tags
// clickfleet_crashpoints ./cmd/clickfleet`). `make test` builds one for the whole run and sets it, so
// that the packages' process tests share one link instead of making one each (a link of the race
// binary costs about 9 s of CPU).
const BinaryEnv = "CLICKFLEET_TEST_BINARY"

// binaryTags are the build tags Binary builds with, and a prebuilt binary must have been built with.
const binaryTags = "clickfleet_crashpoints"

var (
	binMu sync.Mutex
	bins  = map[testing.TB]string{}

	prebuiltOnce sync.Once
	prebuiltErr  error
)

// Binary returns the path of a cmd/clickfleet built with the race detector, like the tests, and with the
// crash points of internal/crashpoint compiled in. With BinaryEnv set it is that binary, once it is
// checked: built with those flags and newer than every non-test Go file of the module (else the test fails
// naming the setting). Without it, Binary builds one into a directory removed when the test ends; later
// calls in the same test return the same binary. The Go build cache makes every build after the first
// a link step.
func Binary(t testing.TB) string {
	t.Helper()
	if bin := os.Getenv(BinaryEnv); bin != "" {
		prebuiltOnce.Do(func() { prebuiltErr = checkPrebuilt(bin) })
		if prebuiltErr != nil {
			t.Fatalf("%s=%s: %v", BinaryEnv, bin, prebuiltErr)
		}
		return bin
	}
	binMu.Lock()
	defer binMu.Unlock()
	if bin, ok := bins[t]; ok {
		return bin
	}
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "clickfleet")
	cmd := exec.Command("go", "build", "-race", "-tags", binaryTags, "-o", bin, "./cmd/clickfleet")
	cmd.Dir = root
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

func moduleRoot() (string, error) {
	root, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return "", fmt.Errorf("find the module root: %w", err)
	}
	return strings.TrimSpace(string(root)), nil
}

// checkPrebuilt refuses a binary that is not cmd/clickfleet built with Binary's flags, or that is older
// than a non-test Go file of the module (built before the code under test changed).
func checkPrebuilt(bin string) error {
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		return fmt.Errorf("not a Go binary: %w", err)
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	if !strings.HasSuffix(info.Path, "/cmd/clickfleet") || settings["-race"] != "true" || settings["-tags"] != binaryTags {
		return fmt.Errorf("built as %s with -race=%q -tags=%q; want cmd/clickfleet built with -race -tags %s",
			info.Path, settings["-race"], settings["-tags"], binaryTags)
	}
	st, err := os.Stat(bin)
	if err != nil {
		return err
	}
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	newer, err := newerGoFile(root, st.ModTime().UnixNano())
	if err != nil {
		return err
	}
	if newer != "" {
		return fmt.Errorf("older than %s: rebuild it (go build -race -tags %s -o %s ./cmd/clickfleet)", newer, binaryTags, bin)
	}
	return nil
}

// newerGoFile returns a Go source file other than a test (or go.mod, go.sum) under root modified after
// ns, skipping hidden directories and node_modules; "" when there is none.
func newerGoFile(root string, ns int64) (string, error) {
	var newer string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if (!strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go")) && name != "go.mod" && name != "go.sum" {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.ModTime().UnixNano() > ns {
			newer = path
			return filepath.SkipAll
		}
		return nil
	})
	return newer, err
}
