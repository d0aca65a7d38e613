package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Fleet runs `clickfleet consume` (or Command) worker processes for a scenario and reads their /metrics.
type Fleet struct {
	// Binary is the clickfleet executable. Required.
	Binary string
	// Command is the subcommand every worker runs. Default: consume.
	Command string
	// Args are given to every worker after the command (stream, lease table, Redis, timings …).
	Args []string
	// Env is added to the environment the workers inherit (endpoints, say).
	Env []string
	// WorkerArgs are given to the named worker after Args.
	WorkerArgs map[string][]string
	// LogDir receives one log file per worker process.
	LogDir string

	mu      sync.Mutex
	workers map[string]*workerProc
	order   []string
}

type workerProc struct {
	id      string
	cmd     *exec.Cmd
	addr    string
	log     *os.File
	started time.Time
	done    chan struct{}
	err     error // the process's exit, once done is closed
}

// Start launches worker id and waits until its /readyz answers (up to 30 s).
func (f *Fleet) Start(ctx context.Context, id string) error {
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(f.LogDir, id+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644) // a restarted worker appends
	if err != nil {
		return err
	}
	command := f.Command
	if command == "" {
		command = "consume"
	}
	args := append([]string{command, "--worker-id", id, "--http-listen", addr, "--log-format", "json"}, f.Args...)
	args = append(args, f.WorkerArgs[id]...)
	cmd := exec.Command(f.Binary, args...)
	if len(f.Env) > 0 {
		cmd.Env = append(os.Environ(), f.Env...)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start worker %s: %w", id, err)
	}
	w := &workerProc{id: id, cmd: cmd, addr: addr, log: logf, started: time.Now(), done: make(chan struct{})}
	go func() { w.err = cmd.Wait(); logf.Close(); close(w.done) }()
	f.mu.Lock()
	if f.workers == nil {
		f.workers = map[string]*workerProc{}
	}
	f.workers[id] = w
	if !slices.Contains(f.order, id) {
		f.order = append(f.order, id)
	}
	f.mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-w.done:
			return fmt.Errorf("worker %s exited while starting; see %s", id, logf.Name())
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("worker %s not ready after 30s; see %s", id, logf.Name())
		}
	}
}

// Kill ends worker id with SIGKILL: a crash.
func (f *Fleet) Kill(id string) {
	if w := f.take(id); w != nil {
		_ = w.cmd.Process.Kill()
		<-w.done
	}
}

// Stop ends worker id with SIGTERM and waits for it; it returns how long the clean stop took.
func (f *Fleet) Stop(id string) time.Duration {
	w := f.take(id)
	if w == nil {
		return 0
	}
	start := time.Now()
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w.done:
	case <-time.After(60 * time.Second):
		_ = w.cmd.Process.Kill()
		<-w.done
	}
	return time.Since(start)
}

// Terminate ends worker id with SIGTERM (and SIGCONT, should it be stopped) and returns its exit: nil
// for status 0. After timeout it is killed and an error says so.
func (f *Fleet) Terminate(id string, timeout time.Duration) error {
	w := f.take(id)
	if w == nil {
		return fmt.Errorf("worker %s is not running", id)
	}
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	_ = w.cmd.Process.Signal(syscall.SIGCONT)
	select {
	case <-w.done:
		if w.err != nil {
			return fmt.Errorf("worker %s: %w (log: %s)", id, w.err, w.log.Name())
		}
		return nil
	case <-time.After(timeout):
		_ = w.cmd.Process.Kill()
		<-w.done
		return fmt.Errorf("worker %s did not stop within %s of SIGTERM; killed (log: %s)", id, timeout, w.log.Name())
	}
}

// Signal sends sig to worker id (SIGSTOP and SIGCONT, say).
func (f *Fleet) Signal(id string, sig syscall.Signal) error {
	f.mu.Lock()
	w := f.workers[id]
	f.mu.Unlock()
	if w == nil {
		return fmt.Errorf("worker %s is not running", id)
	}
	return w.cmd.Process.Signal(sig)
}

// errExitedZero is the exit of a worker that ended on its own with status 0.
var errExitedZero = errors.New("bench: exited with status 0")

// Exited returns the workers that ended without Kill, Stop or Terminate, with their exits, and forgets
// them.
func (f *Fleet) Exited() map[string]error {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]error{}
	for id, w := range f.workers {
		select {
		case <-w.done:
			exit := w.err
			if exit == nil {
				exit = errExitedZero
			}
			out[id] = fmt.Errorf("%w (log: %s)", exit, w.log.Name())
			delete(f.workers, id)
		default:
		}
	}
	return out
}

// StopAll stops every worker cleanly.
func (f *Fleet) StopAll() {
	for _, id := range f.IDs() {
		f.Stop(id)
	}
}

func (f *Fleet) take(id string) *workerProc {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := f.workers[id]
	delete(f.workers, id)
	return w
}

// IDs returns the running workers in start order.
func (f *Fleet) IDs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []string
	for _, id := range f.order {
		if _, ok := f.workers[id]; ok {
			ids = append(ids, id)
		}
	}
	return ids
}

// WorkerSample is one reading of one worker.
type WorkerSample struct {
	Records    float64 // clickfleet_consumer_records_total
	Held       float64 // clickfleet_lease_held
	CPUSeconds float64 // user + system CPU time of the process
	RSSBytes   float64
	At         time.Time // when the metrics were read
}

// Sample reads every running worker's metrics and resource use; workers that do not answer are left out.
func (f *Fleet) Sample(ctx context.Context) map[string]WorkerSample {
	f.mu.Lock()
	ws := make([]*workerProc, 0, len(f.workers))
	for _, w := range f.workers {
		ws = append(ws, w)
	}
	f.mu.Unlock()
	out := make(map[string]WorkerSample, len(ws))
	for _, w := range ws {
		m, err := scrape(ctx, w.addr, "clickfleet_consumer_records_total", "clickfleet_lease_held", "process_cpu_seconds_total", "process_resident_memory_bytes")
		if err != nil {
			continue
		}
		out[w.id] = WorkerSample{Records: m[0], Held: m[1], CPUSeconds: m[2], RSSBytes: m[3], At: time.Now()}
	}
	return out
}

// Sums reads worker id's /metrics and returns, for each prefix, the sum of the values on the lines that
// start with it: every label set of a metric when the prefix ends before its labels or inside them
// (`clickfleet_consumer_kinesis_calls_total{call="get_records"` sums every outcome), the value itself for
// an unlabelled name.
func (f *Fleet) Sums(ctx context.Context, id string, prefixes ...string) ([]float64, error) {
	f.mu.Lock()
	w := f.workers[id]
	f.mu.Unlock()
	if w == nil {
		return nil, fmt.Errorf("worker %s is not running", id)
	}
	body, err := getMetrics(ctx, w.addr)
	if err != nil {
		return nil, err
	}
	return sumLines(body, prefixes), nil
}

// sumLines sums, for each prefix, the values of the Prometheus text lines that start with it, followed by
// a label set or the value (so a prefix never matches a longer metric name).
func sumLines(text string, prefixes []string) []float64 {
	sums := make([]float64, len(prefixes))
	for line := range strings.Lines(text) {
		if strings.HasPrefix(line, "#") {
			continue
		}
		for i, p := range prefixes {
			rest, ok := strings.CutPrefix(line, p)
			if !ok || (!strings.Contains(p, "{") && !strings.HasPrefix(rest, " ") && !strings.HasPrefix(rest, "{")) {
				continue
			}
			fields := strings.Fields(rest)
			if len(fields) == 0 {
				continue
			}
			if v, err := strconv.ParseFloat(fields[len(fields)-1], 64); err == nil {
				sums[i] += v
			}
		}
	}
	return sums
}

func getMetrics(ctx context.Context, addr string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return "", err
	}
	resp, err := scrapeClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	return string(b), err
}

var scrapeClient = &http.Client{Timeout: 2 * time.Second}

// scrape returns the values of the named unlabelled metrics from a Prometheus text endpoint.
func scrape(ctx context.Context, addr string, names ...string) ([]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := scrapeClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	vals := make([]float64, len(names))
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 8<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for i, n := range names {
			if rest, ok := strings.CutPrefix(line, n+" "); ok {
				vals[i], _ = strconv.ParseFloat(strings.TrimSpace(rest), 64)
			}
		}
	}
	return vals, sc.Err()
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
