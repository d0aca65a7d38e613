package ingest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/clickfleet/clickfleet/consumer/streamtail"
	"github.com/clickfleet/clickfleet/ingest"
	"github.com/clickfleet/clickfleet/internal/provision"
	"github.com/clickfleet/clickfleet/internal/testenv"
	"github.com/clickfleet/clickfleet/messages"
)

// kinesalite is a kinesalite process of this test's own, keeping its data on disk under dir so that
// what it acknowledged survives a kill -9 and a restart.
type kinesalite struct {
	t      *testing.T
	module string
	dir    string
	port   int
	cmd    *exec.Cmd
	exited chan struct{}
}

func newKinesalite(t *testing.T) *kinesalite {
	t.Helper()
	module, err := filepath.Abs("../deploy/local/node_modules/kinesalite")
	if err != nil {
		t.Fatal(err)
	}
	_, errNode := exec.LookPath("node")
	_, errMod := os.Stat(filepath.Join(module, "package.json"))
	if errNode != nil || errMod != nil {
		msg := fmt.Sprintf("needs node and kinesalite in deploy/local/node_modules (run deploy/local/stack up): node: %v, module: %v", errNode, errMod)
		if os.Getenv("CLICKFLEET_REQUIRE_STACK") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	k := &kinesalite{t: t, module: module, dir: t.TempDir(), port: port}
	t.Cleanup(k.kill)
	return k
}

func (k *kinesalite) endpoint() string { return fmt.Sprintf("http://127.0.0.1:%d", k.port) }

func (k *kinesalite) start() {
	k.t.Helper()
	script := fmt.Sprintf(`require(%q)({path: %q, createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 50}).listen(%d, '127.0.0.1')`,
		k.module, k.dir, k.port)
	k.cmd = exec.Command("node", "-e", script)
	k.cmd.Stderr = os.Stderr
	if err := k.cmd.Start(); err != nil {
		k.t.Fatalf("start kinesalite: %v", err)
	}
	k.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) {
		_ = cmd.Wait()
		close(exited)
	}(k.cmd, k.exited)
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", k.port))
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-k.exited:
			k.t.Fatalf("kinesalite exited while starting")
		default:
		}
		if time.Now().After(deadline) {
			k.t.Fatalf("kinesalite did not listen on port %d within 20s", k.port)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill stops the process with SIGKILL, as a crash would, and waits for it to be gone.
func (k *kinesalite) kill() {
	if k.cmd == nil || k.cmd.Process == nil {
		return
	}
	_ = k.cmd.Process.Kill()
	<-k.exited
	k.cmd = nil
}

// Kinesis dies mid-load and comes back: clients get 503s (with per-event results) or retried successes,
// and afterwards every event any 2xx answer — or a 503's per-event "stored" — acknowledged is on the
// stream. The emulator keeps its data on disk, so what it stored before the crash is still there.
func TestKinesisStoppedMidLoad(t *testing.T) {
	em := newKinesalite(t)
	em.start()
	endpoint := em.endpoint()
	kin := kinesis.NewFromConfig(testenv.AWSConfig(t), func(o *kinesis.Options) {
		o.BaseEndpoint = &endpoint
		o.RetryMaxAttempts = 1
	})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	const stream = "outage"
	if _, err := provision.EnsureStream(ctx, kin, stream, 2); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, stream)
	cfg.PutAttempts, cfg.PutBackoff, cfg.PutTimeout, cfg.WriteTimeout = 3, 20*time.Millisecond, time.Second, 10*time.Second
	cfg.RateLimit = 0
	h := start(t, cfg, kin)

	const clients, batches, perBatch = 4, 40, 20
	var (
		mu            sync.Mutex
		acked         = map[string]bool{}
		n503, nErrors atomic.Int64
		ackedCount    atomic.Int64
	)
	killAt := make(chan struct{}) // closed when enough was acknowledged to kill the emulator
	var killOnce sync.Once
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 15 * time.Second}
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				pending := pocEvents(fmt.Sprintf("c%d-b%d", c, b), perBatch)
				for len(pending) > 0 && ctx.Err() == nil {
					req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.url+"/v1/events", strings.NewReader(strings.Join(pending, "\n")))
					req.Header.Set("Content-Type", "application/x-ndjson")
					req.Header.Set("X-Api-Key", testKey)
					resp, err := client.Do(req)
					if err != nil {
						nErrors.Add(1)
						continue
					}
					var r ingest.Response
					err = json.NewDecoder(resp.Body).Decode(&r)
					resp.Body.Close()
					if resp.StatusCode/100 != 2 && resp.StatusCode != http.StatusServiceUnavailable {
						t.Errorf("status %d", resp.StatusCode)
						return
					}
					if resp.StatusCode == http.StatusServiceUnavailable {
						n503.Add(1)
					}
					if err != nil || len(r.Results) != len(pending) {
						t.Errorf("status %d answer without per-event results: %v", resp.StatusCode, err)
						return
					}
					var again []string
					mu.Lock()
					for i, res := range r.Results {
						if res.Status == ingest.StatusStored {
							acked[pending[i]] = true // the event's text: its click id is read after the load
						} else {
							again = append(again, pending[i])
						}
					}
					if len(acked) >= 600 {
						killOnce.Do(func() { close(killAt) })
					}
					ackedCount.Store(int64(len(acked)))
					mu.Unlock()
					pending = again
				}
			}
		}()
	}
	select {
	case <-killAt:
	case <-ctx.Done():
		t.Fatal("the load never reached 600 acknowledged events")
	}
	em.kill()
	// Let clients meet the outage before the restart.
	for n503.Load() == 0 && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	if n503.Load() == 0 {
		cancel()
		wg.Wait()
		t.Fatal("no client was answered 503 while Kinesis was down, within the test's 50 s")
	}
	em.start()
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatalf("load did not finish: %d of %d events acknowledged", ackedCount.Load(), clients*batches*perBatch)
	}
	if len(acked) != clients*batches*perBatch {
		t.Fatalf("%d events acknowledged, want %d", len(acked), clients*batches*perBatch)
	}
	t.Logf("%d events acknowledged; %d answers were 503, %d requests failed to connect", len(acked), n503.Load(), nErrors.Load())
	if n503.Load() == 0 {
		t.Fatal("no client saw a 503: the outage was not observed")
	}

	// Read everything back from the restarted emulator: every acknowledged click id must be there.
	readCtx, stop := context.WithTimeout(ctx, 30*time.Second)
	defer stop()
	var rmu sync.Mutex
	missing := make(map[string]bool, len(acked))
	for event := range acked {
		missing[clickID(t, event)] = true
	}
	records := 0
	errAll := errors.New("all found")
	err := streamtail.Tail(readCtx, kin, stream, streamtail.Options{PollInterval: 50 * time.Millisecond}, func(r streamtail.Record) error {
		ev, err := messages.Decode(r.Data)
		if err != nil {
			return err
		}
		rmu.Lock()
		defer rmu.Unlock()
		records++
		delete(missing, ev.ClickID)
		if len(missing) == 0 {
			return errAll
		}
		return nil
	})
	if !errors.Is(err, errAll) {
		t.Fatalf("%d acknowledged events are not on the stream (read %d records; tail: %v)", len(missing), records, err)
	}
	t.Logf("every acknowledged event found after reading %d records", records)
}

func clickID(t testing.TB, event string) string {
	t.Helper()
	ev, err := messages.Decode([]byte(event))
	if err != nil {
		t.Fatal(err)
	}
	return ev.ClickID
}
