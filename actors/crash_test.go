package actors

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/clickfleet/clickfleet/internal/crashpoint"
	"github.com/clickfleet/clickfleet/internal/testenv"
	"github.com/clickfleet/clickfleet/messages"
)

// app is one consumer application on a stream: its own lease table, sessions table, Redis prefix and
// offers stream, served by `clickfleet consume --processor actors` processes.
type app struct {
	*sinks
	t      *testing.T
	bin    string // the clickfleet binary; "": testenv.Binary(t)
	stream string
	leases string
	procs  []*exec.Cmd
	logs   []*bytes.Buffer
}

func newApp(t *testing.T, base *sinks, stream string) *app {
	s := base.withTable(t)
	s.offers = testenv.Stream(t, s.kin, 1)
	a := &app{sinks: s, t: t, stream: stream, leases: leaseTable(t, s.ddb)}
	t.Cleanup(func() {
		for i, p := range a.procs {
			if p.ProcessState == nil {
				_ = p.Process.Kill()
				_ = p.Wait()
			}
			if t.Failed() {
				t.Logf("log of %s worker %d:\n%s", a.prefix, i, tailOf(a.logs[i].String(), 3000))
			}
		}
	})
	return a
}

func tailOf(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

func (a *app) start(id string, extra ...string) *exec.Cmd { return a.startEnv(nil, id, extra...) }

// startEnv starts a worker with env added to the test's environment.
func (a *app) startEnv(env []string, id string, extra ...string) *exec.Cmd {
	args := []string{"consume", "--processor", "actors", "--stream", a.stream, "--lease-table", a.leases, "--worker-id", id,
		"--redis-url", os.Getenv("CLICKFLEET_REDIS_URL"), "--key-prefix", a.prefix, "--http-listen", "", "--log-format", "json",
		"--sessions-table", a.table, "--offers-stream", a.offers, "--errors-stream", a.errs,
		"--failover-time", "2s", "--take-interval", "500ms", "--idle-time", "100ms", "--shard-sync-interval", "2s",
		"--max-records", "100", "--flush-interval", "200ms", "--flush-max-records", "100"}
	bin := a.bin
	if bin == "" {
		bin = testenv.Binary(a.t)
	}
	cmd := exec.Command(bin, append(args, extra...)...)
	cmd.Env = append(os.Environ(), env...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		a.t.Fatal(err)
	}
	a.procs, a.logs = append(a.procs, cmd), append(a.logs, &buf)
	return cmd
}

func (a *app) stopAll() {
	for i, p := range a.procs {
		if p.ProcessState != nil {
			continue
		}
		_ = p.Process.Signal(syscall.SIGTERM)
		if err := p.Wait(); err != nil {
			a.t.Errorf("worker %d did not stop cleanly: %v\n%s", i, err, tailOf(a.logs[i].String(), 3000))
		}
	}
}

// A worker dies (exit 137, as kill -9) right after a flush's writes and before its checkpoint; a new
// worker replays from the older checkpoint. Sessions, counts and last access end identical to a run
// without the crash; offers repeat only with the same click_id and content.
func TestCrashBetweenFlushAndCheckpoint(t *testing.T) {
	base := newSinks(t)
	stream := testenv.Stream(t, base.kin, 2)
	r := rand.New(rand.NewPCG(5, 5))
	names := []string{"Search", "AddToCart", "ViewContent", "ViewContent", "Purchase"}
	evs := make([]putEvent, 1200)
	ts := int64(1_626_091_318_000)
	perUser := map[string]int64{}
	for i := range evs {
		ts += 200 + r.Int64N(400)
		if i%150 == 149 {
			ts += 20000
		}
		u := fmt.Sprintf("user-%02d", r.IntN(40))
		click := ""
		if i%2 == 0 {
			click = fmt.Sprintf("%032x", r.Uint64())
		}
		evs[i] = putEvent{user: u, device: messages.UnknownDeviceType, ts: ts, data: pocJSON(u, names[r.IntN(len(names))], ts, float64(r.IntN(101)), click)}
		perUser[u]++
	}
	last := putAll(t, base.kin, stream, evs)

	ref, crash := newApp(t, base, stream), newApp(t, base, stream)
	ref.start("ref")
	w := crash.startEnv([]string{crashpoint.Env + "=" + crashpoint.AfterFlush + ":3"}, "crash-1")
	err := w.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 137 {
		t.Fatalf("the crashing worker ended with %v, want exit status 137\n%s", err, tailOf(crash.logs[0].String(), 3000))
	}
	if checkpointedTo(t, base.ddb, crash.leases, last) {
		t.Fatal("the crashed worker had checkpointed everything: the crash point was not between a flush and its checkpoint")
	}
	crash.start("crash-2")
	for _, a := range []*app{ref, crash} {
		testenv.WaitFor(t, a.prefix+" checkpointed at every shard's last record", 90*time.Second, func() bool { return checkpointedTo(t, a.ddb, a.leases, last) })
	}
	// A clean stop writes the rows of the sessions still open before the final checkpoint.
	ref.stopAll()
	crash.stopAll()

	sameResults(t, crash.sinks, ref.sinks)
	equalSessions(t, scanSessions(t, crash.ddb, crash.table), sqlSessions(t, evs))
	counts := map[string]int64{}
	for _, s := range scanSessions(t, ref.ddb, ref.table) {
		counts[s.UserID] += s.EventCount
	}
	if len(counts) != len(perUser) {
		t.Fatalf("sessions of %d users, want %d", len(counts), len(perUser))
	}
	for u, n := range perUser {
		if counts[u] != n {
			t.Errorf("user %s: sessions count %d events, %d were put", u, counts[u], n)
		}
	}
	// Offers: the same click ids with the same content; the crashed run may repeat some.
	offers := func(a *app) (map[string]int, map[string]string) {
		n, body := map[string]int{}, map[string]string{}
		for _, rec := range readStream(t, a.kin, a.offers) {
			var v struct {
				ClickID string `json:"click_id"`
			}
			if err := json.Unmarshal(rec.Data, &v); err != nil || v.ClickID == "" {
				t.Fatalf("offer without click_id: %s", rec.Data)
			}
			if b, ok := body[v.ClickID]; ok && b != string(rec.Data) {
				t.Fatalf("click %s repeated with other content:\n%s\n%s", v.ClickID, b, rec.Data)
			}
			n[v.ClickID]++
			body[v.ClickID] = string(rec.Data)
		}
		return n, body
	}
	refN, refBody := offers(ref)
	crashN, crashBody := offers(crash)
	repeats := 0
	for id, n := range crashN {
		if refN[id] == 0 {
			t.Errorf("offer %s only in the crashed run", id)
		}
		if crashBody[id] != refBody[id] {
			t.Errorf("offer %s differs:\n%s\n%s", id, crashBody[id], refBody[id])
		}
		repeats += n - 1
	}
	if len(crashN) != len(refN) || len(refN) == 0 {
		t.Fatalf("%d distinct offers after the crash, %d without", len(crashN), len(refN))
	}
	t.Logf("%d offers, %d repeated after the crash (same click_id and content)", len(refN), repeats)
}
