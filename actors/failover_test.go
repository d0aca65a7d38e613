package actors

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/clickfleet/clickfleet/internal/testenv"
	"github.com/clickfleet/clickfleet/lease"
)

// A Redis failover loses nothing with --redis-wait-replicas. A worker's Redis endpoint is a proxy in
// front of a primary redis-server whose replica replicates through another proxy, paused during the
// critical window. The worker flushes a phase of events (B) whose state reaches the primary only; the
// primary is killed (kill -9), its replica promoted and the endpoint moved to it, as ElastiCache does;
// the worker is killed too, and a new one reads the state from the promoted replica, takes the rest (C)
// and stops cleanly, writing the open sessions' rows. With the flag, B was never checkpointed before the
// replica had it (the worker wrote it again after the failover), and the sessions equal PostgreSQL's LAG
// oracle. Without it (the second subtest), the checkpoint had passed B, and the test reports what the
// failover lost instead of failing: that is Redis' asynchronous replication, which the flag is for.
func TestRedisFailoverLosesNothing(t *testing.T) {
	base := newSinks(t)
	testenv.Postgres(t) // the oracle
	bin := testenv.Binary(t)
	for _, tc := range []struct {
		name string
		wait bool
	}{{"with --redis-wait-replicas 1", true}, {"without: what a failover loses", false}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFailover(t, base, bin, tc.wait)
			f.phaseA()
			f.phaseB()
			f.failOver()
			f.phaseC()
			f.compare()
		})
	}
}

// failoverEvents returns the three phases' events: 12 users taking turns, an event every 500 ms (each
// user's 6 s apart, so sessions continue), a 15 s pause in A (every user starts a new session).
func failoverEvents() (a, b, c []putEvent) {
	ts := int64(1_626_091_318_000)
	round := func(users []int, n int) []putEvent {
		var out []putEvent
		for range n {
			for _, u := range users {
				user := fmt.Sprintf("fo%02d", u)
				out = append(out, putEvent{user: user, device: "mobile", ts: ts, data: labJSON(user, "detail", ts, "mobile")})
				ts += 500
			}
		}
		return out
	}
	all, even := make([]int, 12), make([]int, 0, 6)
	for u := range all {
		all[u] = u
		if u%2 == 0 {
			even = append(even, u)
		}
	}
	a = round(all, 4)
	ts += 15_000
	a = append(a, round(all, 4)...)
	return a, round(all, 5), round(even, 3)
}

// failover is one run of the scenario.
type failover struct {
	t       *testing.T
	wait    bool
	r       *replicated
	app     *app
	args    []string // the workers' flags beyond the app's
	metrics string   // the first worker's /metrics address
	w1      *exec.Cmd
	evs     []putEvent
	a, b, c []putEvent
	lastA   string
	atKill  map[string]map[string]string // the users' state on the primary when it was killed
}

func newFailover(t *testing.T, base *sinks, bin string, wait bool) *failover {
	r := newReplicated(t)
	endpoint, err := r.proxies.Add("endpoint", "127.0.0.1:0", r.primary.Options().Addr)
	if err != nil {
		t.Fatal(err)
	}
	stream := testenv.Stream(t, base.kin, 1)
	a := newApp(t, base, stream)
	a.bin = bin
	// Rows only at a session's start and at the clean stop: the last rows come from the state in Redis.
	args := []string{"--redis-url", "redis://" + endpoint + "/0", "--geo-mmdb", "",
		"--session-close-delay", "1h", "--session-update-interval", "1h"}
	if wait {
		args = append(args, "--redis-wait-replicas", "1", "--redis-wait-timeout", "300ms")
	}
	f := &failover{t: t, wait: wait, r: r, app: a, args: args, metrics: "127.0.0.1:" + testenv.FreePort(t)}
	f.a, f.b, f.c = failoverEvents()
	return f
}

// phaseA: the first phase is flushed, checkpointed and replicated.
func (f *failover) phaseA() {
	t := f.t
	last := putAll(t, f.app.kin, f.app.stream, f.a)
	f.evs = append(f.evs, f.a...)
	f.lastA = last["shardId-000000000000"]
	f.w1 = f.app.start("w1", append(f.args, "--http-listen", f.metrics)...)
	testenv.WaitFor(t, "w1 checkpointed phase A", 60*time.Second, func() bool { return checkpointedTo(t, f.app.ddb, f.app.leases, last) })
	testenv.WaitReplicated(t, f.r.primary, 20*time.Second, f.r.replica)
}

// phaseB: with replication paused, the second phase's state reaches the primary only. Without the
// flag the worker checkpoints it; with it the worker waits (its waits fall short) and the checkpoint
// stays at A.
func (f *failover) phaseB() {
	t := f.t
	f.r.delay(t, time.Hour) // never resumed: the primary dies first
	last := putAll(t, f.app.kin, f.app.stream, f.b)
	f.evs = append(f.evs, f.b...)
	if f.wait {
		testenv.WaitForState(t, "w1's waits for the replica to fall short", 60*time.Second, func() (bool, string) {
			n, err := scrapeCounter(f.metrics, `clickfleet_actors_replica_waits_total{result="short"}`)
			return err == nil && n >= 2, fmt.Sprintf("%v short waits (%v)", n, err)
		})
	} else {
		testenv.WaitFor(t, "w1 checkpointed phase B", 60*time.Second, func() bool { return checkpointedTo(t, f.app.ddb, f.app.leases, last) })
	}
	ctx := context.Background()
	var err error
	if f.atKill, err = hashes(ctx, f.r.primary, f.app.prefix); err != nil {
		t.Fatal(err)
	}
	onReplica, err := hashes(ctx, f.r.replica, f.app.prefix)
	if err != nil {
		t.Fatal(err)
	}
	if n := differing(f.atKill, onReplica); n == 0 {
		t.Fatal("the replica holds the primary's state before the kill: replication was not paused, the test would prove nothing")
	}
	if at := f.checkpoint(); f.wait && at != f.lastA {
		t.Fatalf("checkpointed at %s while the replica lacked the state; the last record it held is %s", at, f.lastA)
	}
}

// failOver kills the primary, promotes the replica (with a new replica of its own) and moves the
// endpoint; with the flag, the worker then writes B's state again and checkpoints. The first worker is
// killed then.
func (f *failover) failOver() {
	t := f.t
	testenv.KillRedis(t, f.r.dir+"/primary", f.r.primary)
	testenv.FailOver(t, f.r.replica, t.TempDir()) // the promoted replica gets a replica of its own
	if err := f.r.proxies.SetUpstream("endpoint", f.r.replica.Options().Addr); err != nil {
		t.Fatal(err)
	}
	last := map[string]string{"shardId-000000000000": f.b[len(f.b)-1].seq}
	if f.wait {
		testenv.WaitFor(t, "w1 checkpointed phase B after the failover", 60*time.Second, func() bool { return checkpointedTo(t, f.app.ddb, f.app.leases, last) })
	}
	after, err := hashes(context.Background(), f.r.replica, f.app.prefix)
	if err != nil {
		t.Fatal(err)
	}
	lost := differing(f.atKill, after)
	switch {
	case f.wait && lost > 0:
		t.Errorf("after the failover and the checkpoint, the new primary lacks the state of %d of %d users", lost, len(f.atKill))
	case !f.wait:
		t.Logf("without the flag: the checkpoint is past phase B, and the failover lost the state of %d of %d users", lost, len(f.atKill))
	}
	if err := f.w1.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	var exit *exec.ExitError
	if err := f.w1.Wait(); !errors.As(err, &exit) {
		t.Fatalf("w1 ended with %v, want killed", err)
	}
}

// phaseC: a new worker takes the shard from the checkpoint, with the state of the promoted replica,
// processes the last phase and stops cleanly (writing the open sessions' rows).
func (f *failover) phaseC() {
	t := f.t
	f.app.start("w2", f.args...)
	last := putAll(t, f.app.kin, f.app.stream, f.c)
	f.evs = append(f.evs, f.c...)
	testenv.WaitFor(t, "w2 checkpointed phase C", 60*time.Second, func() bool { return checkpointedTo(t, f.app.ddb, f.app.leases, last) })
	f.app.stopAll()
}

// compare checks the sessions table against the oracle (with the flag), or reports the difference.
func (f *failover) compare() {
	t := f.t
	got, want := scanSessions(t, f.app.ddb, f.app.table), sqlSessions(t, f.evs)
	if f.wait {
		equalSessions(t, got, want)
		t.Logf("%d events, %d sessions, equal to the oracle's after the failover", len(f.evs), len(want))
		return
	}
	wrong, missing, extra := 0, 0, 0
	for id, s := range want {
		g, ok := got[id]
		switch {
		case !ok:
			missing++
		case g != s:
			wrong++
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			extra++
		}
	}
	var events int64
	for _, s := range got {
		events += s.EventCount
	}
	t.Logf("without the flag: of the oracle's %d sessions %d have other values and %d are missing; %d sessions the oracle does not have; "+
		"the rows count %d events, %d were put", len(want), wrong, missing, extra, events, len(f.evs))
}

// checkpoint returns the shard's checkpointed sequence number.
func (f *failover) checkpoint() string {
	ls, err := lease.NewTable(f.app.ddb, f.app.leases).List(context.Background())
	if err != nil || len(ls) != 1 {
		f.t.Fatalf("leases: %v, %v", ls, err)
	}
	return ls[0].Checkpoint.SequenceNumber
}

// differing counts the keys of want whose hash differs in got.
func differing(want, got map[string]map[string]string) int {
	n := 0
	for k, h := range want {
		if g, ok := got[k]; !ok || len(g) != len(h) || fmt.Sprint(g) != fmt.Sprint(h) {
			n++
		}
	}
	return n
}

// scrapeCounter reads one sample (name with its labels, as exposed) from a /metrics endpoint.
func scrapeCounter(addr, sample string) (float64, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, nil
}
