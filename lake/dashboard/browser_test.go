package dashboard_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/clickfleet/clickfleet/internal/testenv"
)

// The browser tests run `clickfleet dashboard` (testenv.Binary, so this test binary does not link DuckDB
// itself) against the local stack and drive Debian's Chromium with chromedp. Screenshots go to
// t.ArtifactDir(): kept under -outputdir with `go test -artifacts -outputdir DIR`, else removed.

// chromium returns Debian's Chromium: $CLICKFLEET_CHROMIUM, else chromium or chromium-headless-shell on
// PATH (deploy/local/stack up installs chromium-headless-shell when neither is there).
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CLICKFLEET_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no Chromium: neither chromium nor chromium-headless-shell is on PATH (deploy/local/stack up installs Debian's chromium-headless-shell; or set CLICKFLEET_CHROMIUM)"
	if os.Getenv("CLICKFLEET_REQUIRE_STACK") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// browser starts a headless Chromium and returns a tab's context. Anything the page writes to the console
// as an error (console.error, an uncaught exception, a failed request in the browser log) fails the test,
// unless expected says it is expected.
func browser(t *testing.T, expected func(chromedp.ConsoleMessage) bool) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox, // as root, Chromium's sandbox cannot start
		chromedp.WindowSize(1400, 1900),
		chromedp.UserDataDir(filepath.Join(t.TempDir(), "chromium")),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("start %s: %v", chromium(t), err)
	}
	var mu sync.Mutex
	var pageErrors []string
	messages := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			if (m.Type == chromedp.ConsoleError || m.IsException()) && (expected == nil || !expected(m)) {
				mu.Lock()
				where := fmt.Sprintf(" at %s:%d:%d", m.URL, m.Line, m.Column)
				if m.Stack != nil {
					for _, f := range m.Stack.CallFrames {
						where += fmt.Sprintf("\n    %s %s:%d:%d", f.FunctionName, f.URL, f.LineNumber, f.ColumnNumber)
					}
				}
				pageErrors = append(pageErrors, m.String()+where)
				mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, e := range pageErrors {
			t.Errorf("page error: %s", e)
		}
	})
	return ctx
}

// do runs chromedp actions with a generous timeout.
func do(t *testing.T, ctx context.Context, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatal(err)
	}
}

// eval evaluates a JavaScript expression and decodes its JSON value into out.
func eval(t *testing.T, ctx context.Context, expr string, out any) {
	t.Helper()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	raw, err := chromedp.Run(cctx, chromedp.Evaluate[string]("JSON.stringify("+expr+")"))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	if err := json.Unmarshal([]byte(raw), out); err != nil {
		t.Fatalf("%s: %v (%s)", expr, err, raw)
	}
}

// waitJS waits until a JavaScript expression is true.
func waitJS(t *testing.T, ctx context.Context, what string, timeout time.Duration, expr string) {
	t.Helper()
	testenv.WaitFor(t, what, timeout, func() bool {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		ok, err := chromedp.Run(cctx, chromedp.Evaluate[bool]("!!("+expr+")"))
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		return ok
	})
}

// screenshot writes a PNG of the whole page under the test's artifact directory.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	png, err := chromedp.Run(cctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.ArtifactDir(), name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s (%d bytes)", p, len(png))
}

// TestDashboardInBrowser runs the browser tests with one build of the binary (each build is a link of
// DuckDB).
func TestDashboardInBrowser(t *testing.T) {
	chromium(t)
	bin := testenv.Binary(t)
	t.Run("charts", func(t *testing.T) { testChartsInBrowser(t, bin) })
	t.Run("fleet", func(t *testing.T) { testFleetInBrowser(t, bin) })
	t.Run("sources down", func(t *testing.T) { testSourcesDownInBrowser(t, bin) })
}

func navigate(url string) chromedp.Action[chromedp.Void] { return chromedp.Navigate(url) }

// proc is a clickfleet process started by the test.
type proc struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// start runs the clickfleet binary bin with args and the stack's environment; it is stopped (SIGTERM,
// then SIGKILL) when the test ends. Its output goes to a log file whose tail a failure shows.
func start(t *testing.T, bin, name string, args ...string) *proc {
	return startEnv(t, bin, name, nil, args...)
}

// startEnv is start with variables added to the environment.
func startEnv(t *testing.T, bin, name string, env []string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	lf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(append(os.Environ(), "CLICKFLEET_LOG_FORMAT=json"), env...)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); lf.Close(); close(p.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			if len(b) > 3000 {
				b = b[len(b)-3000:]
			}
			t.Logf("%s log tail:\n%s", name, b)
		}
	})
	return p
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func freeAddr(t *testing.T) string {
	return net.JoinHostPort("127.0.0.1", testenv.FreePort(t))
}

// waitHTTP waits until url answers 200.
func waitHTTP(t *testing.T, what, url string, p *proc) {
	t.Helper()
	testenv.WaitFor(t, what, 120*time.Second, func() bool {
		if p != nil && p.exited() {
			b, _ := os.ReadFile(p.log)
			t.Fatalf("%s exited: %s", what, b)
		}
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// getJSON fetches url and decodes its JSON body.
func getJSON(t *testing.T, url string, out any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode
}

// normalize re-encodes v through JSON, so that values decoded from different sources compare equal when
// their JSON is equal.
func normalize(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func sameJSON(t *testing.T, what string, got, want any) {
	t.Helper()
	g, w := normalize(t, got), normalize(t, want)
	if !reflect.DeepEqual(g, w) {
		gb, _ := json.Marshal(g)
		wb, _ := json.Marshal(w)
		t.Fatalf("%s differ:\n got  %s\n want %s", what, gb, wb)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
