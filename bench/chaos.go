package bench

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"
	"github.com/parquet-go/parquet-go"
	"github.com/redis/go-redis/v9"

	"github.com/clickfleet/clickfleet/actors/session"
	"github.com/clickfleet/clickfleet/internal/faults"
	"github.com/clickfleet/clickfleet/internal/oracle"
	"github.com/clickfleet/clickfleet/internal/provision"
	"github.com/clickfleet/clickfleet/lease"
	"github.com/clickfleet/clickfleet/messages"
)

// ChaosConfig describes a chaos run: consume and archive workers under a steady load while a seeded
// schedule of faults hits them and every server they use; at the end the results are compared with an
// oracle computed by PostgreSQL from what was produced.
type ChaosConfig struct {
	// Binary is the clickfleet executable the workers run. Required.
	Binary string
	// KinesisURL, DynamoDBURL and S3URL are the real servers' endpoints (http://host:port), which the
	// fault proxies forward to. Required.
	KinesisURL, DynamoDBURL, S3URL string
	// PostgresDSN is the server the oracle runs on; the run also creates a database of its own there
	// for the names sync's customers. Required.
	PostgresDSN string
	// RedisServer is the redis-server executable: the run starts (and restarts) a Redis of its own.
	// Default: redis-server.
	RedisServer string
	// S3 reads the lake back (directly, not through the faults). Required.
	S3 S3API

	Seed           uint64        // of the fault schedule and the load. Default: 1
	Duration       time.Duration // of the load. Default: 60s
	Rate           float64       // events/s produced. Default: 100
	Users          int           // Default: 200
	Shards         int32         // Default: 4
	ConsumeWorkers int           // Default: 3
	ArchiveWorkers int           // Default: 2
	// FailoverTime is the workers' --failover-time; SIGSTOP lasts longer than it. Default: 3s.
	FailoverTime time.Duration
	// Schedule, when set, is run instead of the one drawn from Seed (a failed run's --out, to replay
	// its faults); its entries' Note fields are cleared.
	Schedule []ChaosFault
	// ListenHost is where the proxies listen. Default: 127.0.0.1 (ports picked free).
	ListenHost string
	// LogDir receives the workers' logs and the run's Redis. Default: a temporary directory.
	LogDir   string
	Progress func(string)
}

func (c *ChaosConfig) defaults() error {
	if c.Binary == "" || c.KinesisURL == "" || c.DynamoDBURL == "" || c.S3URL == "" || c.PostgresDSN == "" || c.S3 == nil {
		return errors.New("chaos: Binary, KinesisURL, DynamoDBURL, S3URL, PostgresDSN and S3 are required")
	}
	if c.RedisServer == "" {
		c.RedisServer = "redis-server"
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Duration == 0 {
		c.Duration = 60 * time.Second
	}
	if c.Duration < 20*time.Second {
		return fmt.Errorf("chaos: duration %s is shorter than 20s: no room for the faults", c.Duration)
	}
	if c.Rate == 0 {
		c.Rate = 100
	}
	if c.Users == 0 {
		c.Users = 200
	}
	if c.Shards == 0 {
		c.Shards = 4
	}
	if c.ConsumeWorkers == 0 {
		c.ConsumeWorkers = 3
	}
	if c.ArchiveWorkers == 0 {
		c.ArchiveWorkers = 2
	}
	if c.ConsumeWorkers < 2 || c.ArchiveWorkers < 1 {
		return errors.New("chaos: at least 2 consume workers and 1 archive worker")
	}
	if c.FailoverTime == 0 {
		c.FailoverTime = 3 * time.Second
	}
	if c.ListenHost == "" {
		c.ListenHost = "127.0.0.1"
	}
	if c.Progress == nil {
		c.Progress = func(string) {}
	}
	if c.LogDir == "" {
		d, err := os.MkdirTemp("", "clickfleet-chaos-")
		if err != nil {
			return err
		}
		c.LogDir = d
	}
	return nil
}

// Fault kinds of a chaos schedule.
const (
	FaultKill         = "kill-9"        // SIGKILL a worker; restart it (same id) after For
	FaultTerm         = "sigterm"       // SIGTERM a worker (it must exit 0); restart it after For
	FaultStop         = "sigstop"       // SIGSTOP a worker for For (longer than the failover time), then SIGCONT
	FaultRedisRestart = "redis-restart" // shut Redis down, start it again after For
	FaultThrottle     = "throttle"      // every call to an AWS service answered ProvisionedThroughputExceeded for For
	FaultErrors       = "errors"        // a fraction of an AWS service's calls answered with another error
	FaultLatency      = "latency"       // latency ± jitter on every connection to a server
	FaultReset        = "reset"         // every connection to a server reset (TCP RST)
	FaultStall        = "stall"         // a server stops answering and connections close after a while
)

// ChaosFault is one entry of the schedule.
type ChaosFault struct {
	At     time.Duration `json:"at"`
	For    time.Duration `json:"for"`
	Kind   string        `json:"kind"`
	Target string        `json:"target"` // a worker id or a server: kinesis, dynamodb, redis, s3, postgres
	Detail string        `json:"detail,omitempty"`
	Note   string        `json:"note,omitempty"` // what happened when it ran
}

func (f ChaosFault) String() string {
	s := fmt.Sprintf("%5.1fs +%.1fs %-13s %-9s %s", f.At.Seconds(), f.For.Seconds(), f.Kind, f.Target, f.Detail)
	if f.Note != "" {
		s += " — " + f.Note
	}
	return strings.TrimRight(s, " ")
}

// chaosServers are the servers behind fault proxies.
var chaosServers = []string{"kinesis", "dynamodb", "redis", "s3", "postgres"}

// ChaosSchedule draws the faults of a run from seed: per started minute of duration one kill -9, one
// SIGTERM and one SIGSTOP (of workers picked at random, never one that is down already), one Redis
// restart, one throttling burst on Kinesis and one on DynamoDB, one burst of other errors, and latency
// and resets on each server, plus one stall; all between 5 s in and 8 s before the end.
func ChaosSchedule(seed uint64, duration, failover time.Duration, workers []string) []ChaosFault {
	r := rand.New(rand.NewPCG(seed, 0xc4a05))
	from, to := 5*time.Second, duration-8*time.Second
	at := func() time.Duration { return from + time.Duration(r.Int64N(int64(to-from))) }
	between := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(r.Int64N(int64(hi-lo)+1)) }
	rounds := int((duration + time.Minute - 1) / time.Minute)
	var out []ChaosFault
	busy := map[string]time.Duration{} // worker → down until
	var procs []ChaosFault
	for range rounds {
		for _, k := range []string{FaultKill, FaultTerm, FaultStop} {
			f := ChaosFault{At: at(), Kind: k}
			switch k {
			case FaultKill:
				f.For = between(time.Second, 3*time.Second)
			case FaultTerm:
				f.For = between(500*time.Millisecond, 2*time.Second)
			case FaultStop:
				f.For = failover + between(time.Second, 3*time.Second)
			}
			procs = append(procs, f)
		}
	}
	slices.SortFunc(procs, func(a, b ChaosFault) int { return int(a.At - b.At) })
	for _, f := range procs {
		var free []string
		for _, w := range workers {
			if busy[w] < f.At {
				free = append(free, w)
			}
		}
		if len(free) == 0 {
			continue
		}
		f.Target = free[r.IntN(len(free))]
		busy[f.Target] = f.At + f.For + 10*time.Second // the restart and its readiness
		out = append(out, f)
	}
	for range rounds {
		out = append(out, ChaosFault{At: at(), For: between(time.Second, 3*time.Second), Kind: FaultRedisRestart, Target: "redis"})
		for _, svc := range []string{"kinesis", "dynamodb"} {
			out = append(out, ChaosFault{At: at(), For: between(4*time.Second, 6*time.Second), Kind: FaultThrottle, Target: svc,
				Detail: string(faults.ThroughputExceeded) + " 100%"})
		}
		svc := []string{"kinesis", "dynamodb", "s3"}[r.IntN(3)]
		kinds := []faults.Kind{faults.InternalFailure, faults.ServiceUnavailable}
		switch svc {
		case "kinesis":
			kinds = append(kinds, faults.LimitExceeded)
		case "dynamodb":
			kinds = append(kinds, faults.Throttling)
		}
		out = append(out, ChaosFault{At: at(), For: between(3*time.Second, 6*time.Second), Kind: FaultErrors, Target: svc,
			Detail: fmt.Sprintf("%s %d%%", kinds[r.IntN(len(kinds))], 30+r.IntN(41))})
		for _, srv := range chaosServers {
			lat := between(50*time.Millisecond, 400*time.Millisecond)
			out = append(out, ChaosFault{At: at(), For: between(3*time.Second, 6*time.Second), Kind: FaultLatency, Target: srv,
				Detail: fmt.Sprintf("%dms ± %dms", lat.Milliseconds(), lat.Milliseconds()/2)})
			out = append(out, ChaosFault{At: at(), For: between(500*time.Millisecond, 2*time.Second), Kind: FaultReset, Target: srv})
		}
		out = append(out, ChaosFault{At: at(), For: between(time.Second, 3*time.Second), Kind: FaultStall, Target: chaosServers[r.IntN(len(chaosServers))],
			Detail: "connections close after 1s"})
	}
	slices.SortStableFunc(out, func(a, b ChaosFault) int { return int(a.At - b.At) })
	return out
}

// ThrottleFigure is what one throttling burst did to the calls of one service.
type ThrottleFigure struct {
	At        time.Duration `json:"at"`
	Service   string        `json:"service"`
	Operation string        `json:"operation"` // counted; "" is every operation
	// Calls per second reaching the service in the 5 s before the burst, during it (past its first
	// second) and in the 5 s after it.
	Before float64 `json:"before_per_s"`
	During float64 `json:"during_per_s"`
	After  float64 `json:"after_per_s"`
	// CatchUpSeconds is the time from the burst's end until both applications had checkpointed every
	// record put before the end; -1 when that did not happen before the run ended.
	CatchUpSeconds float64 `json:"catch_up_seconds"`
	// ByOperation has each operation's calls per second before and during the burst.
	ByOperation map[string][2]float64 `json:"by_operation"`
}

// ChaosResult is what a chaos run did and found.
type ChaosResult struct {
	Seed       uint64           `json:"seed"`
	Duration   time.Duration    `json:"duration"`
	Produced   int              `json:"produced"`
	Users      int              `json:"users"`
	Sessions   int              `json:"sessions"`
	Objects    int              `json:"lake_objects"`
	Faults     []ChaosFault     `json:"faults"`
	Throttles  []ThrottleFigure `json:"throttles"`
	Unexpected []string         `json:"unexpected_exits,omitempty"`
	// DrainSeconds is the time from the load's end until both applications had checkpointed everything.
	DrainSeconds float64 `json:"drain_seconds"`
	LogDir       string  `json:"log_dir"`
}

// chaosEvent is one produced event, where it landed, and its identity.
type chaosEvent struct {
	user, click string
	ts          int64
	shard, seq  string
}

// Chaos runs the chaos scenario. It returns an error naming the first difference from the oracle (and
// the result, with the schedule) when anything was lost, doubled or wrong.
func Chaos(ctx context.Context, kin KinesisAPI, ddb DynamoDBAPI, cfg ChaosConfig) (ChaosResult, error) {
	if err := cfg.defaults(); err != nil {
		return ChaosResult{}, err
	}
	res := ChaosResult{Seed: cfg.Seed, Duration: cfg.Duration, Users: cfg.Users, LogDir: cfg.LogDir}
	id := fmt.Sprintf("chaos-%d-%d", cfg.Seed, time.Now().UnixNano())
	prefix := id + ":"
	bg := context.WithoutCancel(ctx)

	// The run's resources.
	if _, err := provision.EnsureStream(ctx, kin, id, cfg.Shards); err != nil {
		return res, err
	}
	defer kin.DeleteStream(bg, &kinesis.DeleteStreamInput{StreamName: aws.String(id)})
	for _, out := range []string{id + "-offers", id + "-errors"} {
		if _, err := provision.EnsureStream(ctx, kin, out, 1); err != nil {
			return res, err
		}
		defer kin.DeleteStream(bg, &kinesis.DeleteStreamInput{StreamName: aws.String(out)})
	}
	consumeLeases, archiveLeases, sessions := id+"-leases", id+"-archive-leases", id+"-sessions"
	for _, t := range []string{consumeLeases, archiveLeases} {
		if err := lease.EnsureTable(ctx, ddb, t); err != nil {
			return res, err
		}
		defer ddb.DeleteTable(bg, &dynamodb.DeleteTableInput{TableName: aws.String(t)})
	}
	if _, err := provision.EnsureSessionsTable(ctx, ddb, sessions); err != nil {
		return res, err
	}
	defer ddb.DeleteTable(bg, &dynamodb.DeleteTableInput{TableName: aws.String(sessions)})
	bucket := id
	if _, err := provision.EnsureBucket(ctx, cfg.S3, bucket); err != nil {
		return res, err
	}
	defer deleteBucket(bg, cfg.S3, bucket)
	users := make([]string, cfg.Users)
	for i := range users {
		users[i] = fmt.Sprintf("u%04d", i)
	}
	pgDB, dropDB, err := customersDatabase(ctx, cfg.PostgresDSN, strings.ReplaceAll(id, "-", "_"), users)
	if err != nil {
		return res, err
	}
	defer dropDB()

	// Redis of the run's own, so it can be restarted.
	redisDir := filepath.Join(cfg.LogDir, "redis")
	if err := os.MkdirAll(redisDir, 0o755); err != nil {
		return res, err
	}
	redisPort, err := freePort()
	if err != nil {
		return res, err
	}
	rs := &redisServer{bin: cfg.RedisServer, dir: redisDir, port: redisPort}
	if err := rs.start(ctx); err != nil {
		return res, err
	}
	defer rs.stop()
	rdb := redis.NewClient(&redis.Options{Addr: rs.addr()})
	defer rdb.Close()

	// Faults: worker → Toxiproxy → (AWS layer) → server.
	px := faults.NewProxies()
	defer px.Close()
	layers := map[string]*faults.AWSLayer{}
	upstream := map[string]string{}
	for i, svc := range []struct{ name, url string }{{"kinesis", cfg.KinesisURL}, {"dynamodb", cfg.DynamoDBURL}, {"s3", cfg.S3URL}} {
		l, err := faults.NewAWSLayer(svc.url, cfg.Seed+uint64(i))
		if err != nil {
			return res, err
		}
		addr, err := l.Listen(net.JoinHostPort(cfg.ListenHost, "0"))
		if err != nil {
			return res, err
		}
		defer l.Close()
		layers[svc.name], upstream[svc.name] = l, addr
	}
	pgURL, err := url.Parse(pgDB)
	if err != nil || pgURL.Host == "" {
		return res, fmt.Errorf("chaos: the PostgreSQL DSN must be a URL (postgres://host:port/db): %q", cfg.PostgresDSN)
	}
	upstream["redis"], upstream["postgres"] = rs.addr(), pgURL.Host
	front := map[string]string{}
	for _, srv := range chaosServers {
		addr, err := px.Add(srv, net.JoinHostPort(cfg.ListenHost, "0"), upstream[srv])
		if err != nil {
			return res, err
		}
		front[srv] = addr
	}
	proxiedPG := *pgURL
	proxiedPG.Host = front["postgres"]
	env := []string{"AWS_ENDPOINT_URL_KINESIS=http://" + front["kinesis"], "AWS_ENDPOINT_URL_DYNAMODB=http://" + front["dynamodb"],
		"AWS_ENDPOINT_URL_S3=http://" + front["s3"]}
	for _, k := range []string{"AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
		if os.Getenv(k) == "" {
			env = append(env, k+"=local")
		}
	}
	if os.Getenv("AWS_REGION") == "" {
		env = append(env, "AWS_REGION=us-east-1")
	}
	redisURL := "redis://" + front["redis"] + "/0"
	ft := cfg.FailoverTime.String()
	common := []string{"--stream", id, "--redis-url", redisURL, "--key-prefix", prefix, "--geo-mmdb", "",
		"--failover-time", ft, "--take-interval", "500ms", "--idle-time", "100ms", "--shard-sync-interval", "2s", "--max-records", "500"}
	consumeFleet := &Fleet{Binary: cfg.Binary, Command: "consume", LogDir: cfg.LogDir, Env: env, Args: append(slices.Clone(common),
		"--lease-table", consumeLeases, "--processor", "actors", "--sessions-table", sessions, "--offers-stream", id+"-offers",
		"--errors-stream", id+"-errors", "--flush-interval", "200ms", "--flush-max-records", "200")}
	archiveFleet := &Fleet{Binary: cfg.Binary, Command: "archive", LogDir: cfg.LogDir, Env: env, Args: append(slices.Clone(common),
		"--lease-table", archiveLeases, "--lake-url", "s3://"+bucket+"/", "--s3-path-style", "true", "--buffer-bytes", "65536",
		"--buffer-interval", "2s", "--buffer-interval-unchecked", "--shutdown-timeout", "30s", "--put-timeout", "10s")}
	// The first consume worker also runs the names sync, the fleet's one PostgreSQL client.
	namesArgs := []string{"--names-sync", "--pg-dsn", proxiedPG.String(), "--sync-interval", "2s"}
	var workerIDs []string
	fleetOf := map[string]*Fleet{}
	for i := 1; i <= cfg.ConsumeWorkers; i++ {
		workerIDs = append(workerIDs, fmt.Sprintf("c%d", i))
		fleetOf[fmt.Sprintf("c%d", i)] = consumeFleet
	}
	for i := 1; i <= cfg.ArchiveWorkers; i++ {
		workerIDs = append(workerIDs, fmt.Sprintf("a%d", i))
		fleetOf[fmt.Sprintf("a%d", i)] = archiveFleet
	}
	consumeFleet.WorkerArgs = map[string][]string{"c1": namesArgs}
	startWorker := func(ctx context.Context, w string) error { return fleetOf[w].Start(ctx, w) }
	defer consumeFleet.StopAll()
	defer archiveFleet.StopAll()
	for _, w := range workerIDs {
		if err := startWorker(ctx, w); err != nil {
			return res, err
		}
	}
	res.Faults = ChaosSchedule(cfg.Seed, cfg.Duration, cfg.FailoverTime, workerIDs)
	if len(cfg.Schedule) > 0 {
		res.Faults = slices.Clone(cfg.Schedule)
		for i := range res.Faults {
			res.Faults[i].Note = ""
			if f := res.Faults[i]; f.At+f.For > cfg.Duration || (fleetOf[f.Target] == nil && !slices.Contains(chaosServers, f.Target)) {
				return res, fmt.Errorf("chaos: schedule entry %d (%s) does not fit the run: target unknown or past --duration", i, f)
			}
		}
	}
	cfg.Progress(fmt.Sprintf("seed %d: %d consume + %d archive workers on %d shards, %.0f events/s for %s, %d faults (logs in %s)",
		cfg.Seed, cfg.ConsumeWorkers, cfg.ArchiveWorkers, cfg.Shards, cfg.Rate, cfg.Duration, len(res.Faults), cfg.LogDir))

	// The load.
	var (
		mu      sync.Mutex
		evs     []chaosEvent
		lastPut = map[string]string{} // shard → last sequence put
	)
	start := time.Now()
	prodDone := make(chan error, 1)
	go func() {
		prodDone <- produceChaos(ctx, kin, id, cfg, users, start, func(put []chaosEvent) {
			mu.Lock()
			defer mu.Unlock()
			evs = append(evs, put...)
			for _, e := range put {
				if seqLess(lastPut[e.shard], e.seq) {
					lastPut[e.shard] = e.seq
				}
			}
		})
	}()
	snapshot := func() map[string]string {
		mu.Lock()
		defer mu.Unlock()
		out := make(map[string]string, len(lastPut))
		for k, v := range lastPut {
			out[k] = v
		}
		return out
	}
	checkpointed := func(ctx context.Context, want map[string]string) (bool, error) {
		for _, t := range []string{consumeLeases, archiveLeases} {
			leases, err := lease.NewTable(ddb, t).List(ctx)
			if err != nil {
				return false, err
			}
			got := map[string]string{}
			for _, l := range leases {
				got[l.Key] = l.Checkpoint.SequenceNumber
			}
			for shard, seq := range want {
				if c := got[shard]; c == "" || seqLess(c, seq) {
					return false, nil
				}
			}
		}
		return true, nil
	}

	// The faults, each in its own goroutine at its time.
	var (
		fmu        sync.Mutex
		unexpected []string
		fwg        sync.WaitGroup
		throttles  = make([]*ThrottleFigure, len(res.Faults))
	)
	note := func(i int, s string) {
		fmu.Lock()
		defer fmu.Unlock()
		if res.Faults[i].Note != "" {
			res.Faults[i].Note += "; "
		}
		res.Faults[i].Note += s
	}
	fctx, stopFaults := context.WithCancel(ctx)
	defer stopFaults()
	for i, f := range res.Faults {
		fwg.Go(func() {
			if !sleepUntil(fctx, start.Add(f.At)) {
				return
			}
			cfg.Progress(fmt.Sprintf("%5.1fs %s %s %s", time.Since(start).Seconds(), f.Kind, f.Target, f.Detail))
			hold := func() { sleepUntil(fctx, time.Now().Add(f.For)) }
			switch f.Kind {
			case FaultKill, FaultTerm, FaultStop:
				fl := fleetOf[f.Target]
				switch f.Kind {
				case FaultKill:
					fl.Kill(f.Target)
				case FaultTerm:
					if err := fl.Terminate(f.Target, 60*time.Second); err != nil {
						note(i, "SIGTERM: "+err.Error())
						fmu.Lock()
						unexpected = append(unexpected, fmt.Sprintf("%s at SIGTERM (%.1fs): %v", f.Target, f.At.Seconds(), err))
						fmu.Unlock()
					} else {
						note(i, "exited 0")
					}
				case FaultStop:
					_ = fl.Signal(f.Target, syscall.SIGSTOP)
				}
				hold()
				if f.Kind == FaultStop {
					_ = fl.Signal(f.Target, syscall.SIGCONT)
					return
				}
				if err := startWorker(bg, f.Target); err != nil {
					note(i, "restart: "+err.Error())
				} else {
					note(i, fmt.Sprintf("restarted, ready at %.1fs", time.Since(start).Seconds()))
				}
			case FaultRedisRestart:
				if err := rs.shutdown(bg); err != nil {
					note(i, "shutdown: "+err.Error())
				}
				hold()
				if err := rs.start(bg); err != nil {
					note(i, "start: "+err.Error())
				}
			case FaultThrottle, FaultErrors:
				l := layers[f.Target]
				fault := faults.Fault{Kind: faults.ThroughputExceeded, Fraction: 1}
				if f.Kind == FaultErrors {
					var pct int
					var kind string
					fmt.Sscanf(f.Detail, "%s %d%%", &kind, &pct)
					fault = faults.Fault{Kind: faults.Kind(kind), Fraction: float64(pct) / 100}
				}
				if err := l.Set(fault); err != nil {
					note(i, err.Error())
					return
				}
				began := time.Now()
				hold()
				l.Clear()
				ended := time.Now()
				if f.Kind != FaultThrottle {
					return
				}
				op := ""
				if f.Target == "kinesis" {
					op = "GetRecords"
				}
				tf := &ThrottleFigure{At: f.At, Service: f.Target, Operation: op, CatchUpSeconds: -1}
				tf.Before, _ = l.Rate(op, began.Add(-5*time.Second), began)
				tf.During, _ = l.Rate(op, began.Add(time.Second), ended)
				tf.ByOperation = map[string][2]float64{}
				for _, o := range l.Operations() {
					b, _ := l.Rate(o, began.Add(-5*time.Second), began)
					d, _ := l.Rate(o, began.Add(time.Second), ended)
					tf.ByOperation[o] = [2]float64{b, d}
				}
				want := snapshot()
				for fctx.Err() == nil {
					if ok, err := checkpointed(fctx, want); err == nil && ok {
						tf.CatchUpSeconds = time.Since(ended).Seconds()
						break
					}
					sleepUntil(fctx, time.Now().Add(250*time.Millisecond))
				}
				sleepUntil(fctx, ended.Add(6*time.Second))
				tf.After, _ = l.Rate(op, ended, ended.Add(5*time.Second))
				fmu.Lock()
				throttles[i] = tf
				fmu.Unlock()
				note(i, fmt.Sprintf("%s calls/s before %.1f, during %.1f, after %.1f; caught up %.1fs after", or(op, "all"), tf.Before, tf.During, tf.After, tf.CatchUpSeconds))
			case FaultLatency, FaultReset, FaultStall:
				var names []string
				var err error
				switch f.Kind {
				case FaultLatency:
					var lat, jit int
					fmt.Sscanf(f.Detail, "%dms ± %dms", &lat, &jit)
					names, err = px.Latency(f.Target, time.Duration(lat)*time.Millisecond, time.Duration(jit)*time.Millisecond)
				case FaultReset:
					names, err = px.ResetPeer(f.Target, 0)
				case FaultStall:
					names, err = px.Timeout(f.Target, time.Second)
				}
				if err != nil {
					note(i, err.Error())
					return
				}
				hold()
				if err := px.Remove(f.Target, names); err != nil {
					note(i, err.Error())
				}
			}
		})
	}

	// Watch for workers that end on their own, and restart them.
	watch := time.NewTicker(500 * time.Millisecond)
	defer watch.Stop()
	var prodErr error
	for running := true; running; {
		select {
		case <-ctx.Done():
			return res, context.Cause(ctx)
		case prodErr = <-prodDone:
			running = false
		case <-watch.C:
		}
		for _, fl := range []*Fleet{consumeFleet, archiveFleet} {
			for w, err := range fl.Exited() {
				msg := fmt.Sprintf("%s exited on its own at %.1fs: %v", w, time.Since(start).Seconds(), err)
				cfg.Progress(msg)
				fmu.Lock()
				unexpected = append(unexpected, msg)
				fmu.Unlock()
				go func() { _ = startWorker(bg, w) }()
			}
		}
	}
	if prodErr != nil {
		return res, fmt.Errorf("producer: %w", prodErr)
	}
	loadEnd := time.Now()
	cfg.Progress(fmt.Sprintf("%5.1fs load stopped: %d events", time.Since(start).Seconds(), len(evs)))
	fwg.Wait() // every fault reverted (throttle figures take a few seconds more)

	// Drain: both applications checkpointed at every shard's last record.
	want := snapshot()
	deadline := time.Now().Add(3*time.Minute + cfg.Duration)
	for {
		ok, err := checkpointed(ctx, want)
		if err == nil && ok {
			break
		}
		for _, fl := range []*Fleet{consumeFleet, archiveFleet} {
			for w, err := range fl.Exited() {
				unexpected = append(unexpected, fmt.Sprintf("%s exited on its own while draining: %v", w, err))
				_ = startWorker(bg, w)
			}
		}
		if time.Now().After(deadline) {
			why := fmt.Sprintf("chaos seed %d: not every record was checkpointed by both applications %s after the load",
				cfg.Seed, time.Since(loadEnd).Round(time.Second))
			if err != nil {
				return res, fmt.Errorf("%s: %w\n%s", why, err, scheduleText(res.Faults))
			}
			return res, fmt.Errorf("%s\n%s", why, scheduleText(res.Faults))
		}
		if !sleepUntil(ctx, time.Now().Add(500*time.Millisecond)) {
			return res, context.Cause(ctx)
		}
	}
	res.DrainSeconds = time.Since(loadEnd).Seconds()
	// The final clean stop writes the closing and pending session rows.
	var stopErrs []string
	for _, fl := range []*Fleet{consumeFleet, archiveFleet} {
		for _, w := range fl.IDs() {
			if err := fl.Terminate(w, 90*time.Second); err != nil {
				stopErrs = append(stopErrs, err.Error())
			}
		}
	}
	for _, t := range throttles {
		if t != nil {
			res.Throttles = append(res.Throttles, *t)
		}
	}
	res.Unexpected = unexpected
	res.Produced = len(evs)
	cfg.Progress(fmt.Sprintf("drained %.1fs after the load; workers stopped; comparing with the oracle", res.DrainSeconds))

	fail := func(format string, args ...any) error {
		return fmt.Errorf("chaos seed %d: %s\nfault schedule:\n%s", cfg.Seed, fmt.Sprintf(format, args...), scheduleText(res.Faults))
	}
	if len(stopErrs) > 0 {
		return res, fail("the final SIGTERM: %s", strings.Join(stopErrs, "; "))
	}
	if len(unexpected) > 0 {
		return res, fail("workers ended on their own: %s", strings.Join(unexpected, "; "))
	}
	// Sessions against the oracle.
	oracle, err := oracleSessions(ctx, cfg.PostgresDSN, evs)
	if err != nil {
		return res, err
	}
	got, err := scanChaosSessions(ctx, ddb, sessions)
	if err != nil {
		return res, err
	}
	res.Sessions = len(oracle)
	if d := firstSessionDiff(got, oracle); d != "" {
		// The user's events and its state, for the investigation.
		user := strings.SplitN(strings.TrimPrefix(d, "session "), "_", 2)[0]
		var b strings.Builder
		for _, e := range evs {
			if e.user == user {
				fmt.Fprintf(&b, "\n    event %d (%s) at %s/%s", e.ts, time.UnixMilli(e.ts).UTC().Format("15:04:05.000"), e.shard, e.seq)
			}
		}
		h, _ := rdb.HGetAll(ctx, session.UserKey(prefix, user)).Result()
		return res, fail("sessions differ from the oracle (%d rows, the oracle has %d): %s\n  user %s's events:%s\n  its state in Redis: %v",
			len(got), len(oracle), d, user, b.String(), h)
	}
	perUser := map[string]int64{}
	lastAccess := map[string]int64{}
	for _, e := range evs {
		perUser[e.user]++
		lastAccess[e.user] = max(lastAccess[e.user], e.ts)
	}
	counted := map[string]int64{}
	for _, s := range got {
		counted[s.UserID] += s.EventCount
	}
	for _, u := range users {
		if counted[u] != perUser[u] {
			return res, fail("user %s: its sessions count %d events, %d were produced", u, counted[u], perUser[u])
		}
	}
	// Last access and names in Redis.
	for _, u := range slices.Sorted(keysOf(perUser)) {
		h, err := rdb.HGetAll(ctx, session.UserKey(prefix, u)).Result()
		if err != nil {
			return res, fmt.Errorf("read user %s: %w", u, err)
		}
		if h[session.FieldLastAccess] != strconv.FormatInt(lastAccess[u], 10) {
			return res, fail("user %s: last_access_ms %q, want %d (the latest of its events)", u, h[session.FieldLastAccess], lastAccess[u])
		}
	}
	for _, u := range users {
		name, err := rdb.HGet(ctx, session.UserKey(prefix, u), session.FieldName).Result()
		if err != nil || name != customerName(u) {
			return res, fail("user %s: name %q (%v) in Redis, want %q from PostgreSQL (the names sync)", u, name, err, customerName(u))
		}
	}
	// The lake: every produced click_id exactly once in raw and once in events, nothing else.
	raw, rows, objects, err := readChaosLake(ctx, cfg.S3, bucket)
	if err != nil {
		return res, err
	}
	res.Objects = objects
	for name, n := range map[string]map[string]int{"raw": raw, "events": rows} {
		for _, e := range evs {
			if n[e.click] != 1 {
				return res, fail("click %s (user %s, %s/%s) is in %d %s records of the lake, want 1", e.click, e.user, e.shard, e.seq, n[e.click], name)
			}
		}
		if len(n) != len(evs) {
			return res, fail("the lake's %s objects hold %d distinct click_ids, %d were produced", name, len(n), len(evs))
		}
	}
	return res, nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func keysOf[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func scheduleText(fs []ChaosFault) string {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString("  " + f.String() + "\n")
	}
	return b.String()
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-tm.C:
		return true
	}
}

// seqLess compares Kinesis sequence numbers (decimal strings of up to 128 bits); "" is below all.
func seqLess(a, b string) bool {
	if a == "" {
		return b != ""
	}
	if len(a) != len(b) {
		x, okx := new(big.Int).SetString(a, 10)
		y, oky := new(big.Int).SetString(b, 10)
		if okx && oky {
			return x.Cmp(y) < 0
		}
	}
	return a < b
}

// produceChaos puts POC events at cfg.Rate for cfg.Duration, every one with a click_id of its own and
// an event time 10 s ÷ users after the previous one (so a user's gaps straddle the 10 s session gap),
// and reports each stored batch with where its records landed. Entries the stream refused are put
// again; a failed call is an error (the producer talks to the server directly, past the faults).
func produceChaos(ctx context.Context, kin KinesisAPI, stream string, cfg ChaosConfig, users []string, start time.Time, stored func([]chaosEvent)) error {
	r := rand.New(rand.NewPCG(cfg.Seed, 0x10ad))
	names := []string{"Search", "AddToCart", "ViewContent", "ViewContent", "Purchase"}
	step := int64(10_000 / len(users))
	if step < 1 {
		step = 1
	}
	ts := int64(1_764_547_200_000) // 2025-12-01T00:00:00Z
	n := 0
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var pending []chaosEvent
	var pendingData [][]byte
	for time.Since(start) < cfg.Duration || len(pending) > 0 {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-tick.C:
		}
		if time.Since(start) < cfg.Duration {
			due := int(cfg.Rate * time.Since(start).Seconds())
			for ; n < due && len(pending) < 500; n++ {
				ts += step
				u := users[r.IntN(len(users))]
				click := fmt.Sprintf("%016x%016x", cfg.Seed, uint64(n))
				name := names[r.IntN(len(names))]
				data := fmt.Sprintf(`{"timestamp":%q,"user_id":%q,"pixel_id":"px%d","click_id":%q,"insertion_timestamp":%q,"event_name":%q,"user_ip":"","additional_data":{"time_on_data":%d,"percent_viewed":%d,"product_id":%d,"price":%d.5}}`,
					time.UnixMilli(ts).UTC().Format("2006-01-02 15:04:05.000000"), u, n%97, click, time.UnixMilli(ts+50).UTC().Format("2006-01-02 15:04:05.000000"),
					name, r.IntN(300), r.IntN(101), 1000+r.IntN(500), r.IntN(200))
				pending = append(pending, chaosEvent{user: u, click: click, ts: ts})
				pendingData = append(pendingData, []byte(data))
			}
		}
		if len(pending) == 0 {
			continue
		}
		entries := make([]ktypes.PutRecordsRequestEntry, len(pending))
		for i, e := range pending {
			entries[i] = ktypes.PutRecordsRequestEntry{Data: pendingData[i], PartitionKey: aws.String(e.user)}
		}
		out, err := kin.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries})
		if err != nil {
			return fmt.Errorf("PutRecords: %w", err)
		}
		var ok []chaosEvent
		var retryEv []chaosEvent
		var retryData [][]byte
		for i, rec := range out.Records {
			if rec.ErrorCode != nil {
				retryEv, retryData = append(retryEv, pending[i]), append(retryData, pendingData[i])
				continue
			}
			e := pending[i]
			e.shard, e.seq = aws.ToString(rec.ShardId), aws.ToString(rec.SequenceNumber)
			ok = append(ok, e)
		}
		stored(ok)
		pending, pendingData = retryEv, retryData
	}
	return nil
}

// oracleSessions computes the sessions from the produced events in PostgreSQL (package oracle), independently of the
// project's Go code: the lab's LAG over each user's events in stream order, a new session where the gap
// to the previous event exceeds 10 s or there is none, named and measured as docs/contracts.md says.
func oracleSessions(ctx context.Context, dsn string, evs []chaosEvent) (map[string]messages.Session, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("oracle: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	in := make([]oracle.Event, len(evs))
	for i, e := range evs {
		in[i] = oracle.Event{UserID: e.user, TimestampMs: e.ts, DeviceType: "unknown", Shard: e.shard, Seq: e.seq}
	}
	return oracle.Sessions(ctx, conn, in)
}

// scanChaosSessions reads every session row (consistent scan).
func scanChaosSessions(ctx context.Context, ddb DynamoDBAPI, table string) (map[string]messages.Session, error) {
	out := map[string]messages.Session{}
	var start map[string]dtypes.AttributeValue
	for {
		page, err := ddb.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true), ExclusiveStartKey: start})
		if err != nil {
			return nil, fmt.Errorf("scan sessions: %w", err)
		}
		for _, it := range page.Items {
			str := func(k string) string {
				v, _ := it[k].(*dtypes.AttributeValueMemberS)
				if v == nil {
					return ""
				}
				return v.Value
			}
			num := func(k string) int64 {
				v, _ := it[k].(*dtypes.AttributeValueMemberN)
				if v == nil {
					return -1
				}
				n, _ := strconv.ParseInt(v.Value, 10, 64)
				return n
			}
			s := messages.Session{SessionID: str("session_id"), UserID: str("user_id"), DeviceType: str("device_type"), SessionTime: str("session_time"),
				StartMs: num("start_ms"), LastEventMs: num("last_event_ms"), EventCount: num("event_count"), UpdatedMs: num("updated_ms")}
			out[s.SessionID] = s
		}
		if len(page.LastEvaluatedKey) == 0 {
			return out, nil
		}
		start = page.LastEvaluatedKey
	}
}

// firstSessionDiff describes the first session (by id) that differs, is missing or is extra; "" when
// the two are equal.
func firstSessionDiff(got, want map[string]messages.Session) string {
	ids := map[string]bool{}
	for id := range got {
		ids[id] = true
	}
	for id := range want {
		ids[id] = true
	}
	for _, id := range slices.Sorted(keysOf(ids)) {
		g, gok := got[id]
		w, wok := want[id]
		switch {
		case !gok:
			return fmt.Sprintf("session %s is missing; the oracle has %+v", id, w)
		case !wok:
			return fmt.Sprintf("session %s is not in the oracle: %+v", id, g)
		case func() bool { g.UpdatedMs = 0; return g != w }():
			return fmt.Sprintf("session %s (row written at %s):\n  got  %+v\n  want %+v", id,
				time.UnixMilli(got[id].UpdatedMs).UTC().Format("15:04:05.000"), g, w)
		}
	}
	return ""
}

// readChaosLake counts each click_id in the raw lines and in the Parquet rows of the bucket, reading
// Parquet with parquet-go.
func readChaosLake(ctx context.Context, api S3API, bucket string) (raw, rows map[string]int, objects int, err error) {
	raw, rows = map[string]int{}, map[string]int{}
	p := s3.NewListObjectsV2Paginator(api, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, nil, 0, fmt.Errorf("list the lake: %w", err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			g, err := api.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: o.Key})
			if err != nil {
				return nil, nil, 0, fmt.Errorf("get %s: %w", key, err)
			}
			b, err := io.ReadAll(g.Body)
			g.Body.Close()
			if err != nil {
				return nil, nil, 0, fmt.Errorf("get %s: %w", key, err)
			}
			objects++
			switch {
			case strings.HasPrefix(key, "raw/"):
				zr, err := gzip.NewReader(bytes.NewReader(b))
				if err != nil {
					return nil, nil, 0, fmt.Errorf("%s: %w", key, err)
				}
				sc := bufio.NewScanner(zr)
				sc.Buffer(make([]byte, 1<<20), 4<<20)
				for sc.Scan() {
					var v struct {
						ClickID string `json:"click_id"`
					}
					if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
						return nil, nil, 0, fmt.Errorf("%s: a line that is not JSON: %w", key, err)
					}
					raw[v.ClickID]++
				}
				if err := sc.Err(); err != nil {
					return nil, nil, 0, fmt.Errorf("%s: %w", key, err)
				}
			case strings.HasPrefix(key, "events/"):
				r := parquet.NewGenericReader[clickRow](bytes.NewReader(b))
				buf := make([]clickRow, 256)
				for {
					n, err := r.Read(buf)
					for _, row := range buf[:n] {
						rows[row.ClickID]++
					}
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil {
						r.Close()
						return nil, nil, 0, fmt.Errorf("%s: %w", key, err)
					}
				}
				r.Close()
			case strings.HasPrefix(key, "errors/"):
				return nil, nil, 0, fmt.Errorf("the lake has an errors object %s, but every produced event is valid", key)
			}
		}
	}
	return raw, rows, objects, nil
}

// clickRow is the one column of the events table that the chaos check reads.
type clickRow struct {
	ClickID string `parquet:"click_id"`
}

func deleteBucket(ctx context.Context, api S3API, bucket string) {
	p := s3.NewListObjectsV2Paginator(api, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			break
		}
		for _, o := range page.Contents {
			_, _ = api.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: o.Key})
		}
	}
	_, _ = api.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(bucket)})
}

func customerName(user string) string { return "Customer " + strings.TrimPrefix(user, "u") }

// customersDatabase creates database name on the server of dsn with the customers schema and one
// customer per user, and returns its DSN and a func that drops it.
func customersDatabase(ctx context.Context, dsn, name string, users []string) (string, func(), error) {
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", nil, fmt.Errorf("chaos: PostgreSQL: %w", err)
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		admin.Close(ctx)
		return "", nil, fmt.Errorf("chaos: create database %s: %w", name, err)
	}
	drop := func() {
		ctx := context.Background()
		_, _ = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
		admin.Close(ctx)
	}
	cc := admin.Config().Copy()
	cc.Database = name
	u := &url.URL{Scheme: "postgres", Host: net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port))), Path: "/" + name}
	if cc.User != "" {
		u.User = url.UserPassword(cc.User, cc.Password)
		if cc.Password == "" {
			u.User = url.User(cc.User)
		}
	}
	q := url.Values{"sslmode": {"disable"}}
	u.RawQuery = q.Encode()
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		drop()
		return "", nil, fmt.Errorf("chaos: connect to %s: %w", name, err)
	}
	defer conn.Close(ctx)
	if err := provision.EnsureCustomersSchema(ctx, conn); err != nil {
		drop()
		return "", nil, err
	}
	rows := make([][]any, len(users))
	for i, u := range users {
		rows[i] = []any{u, customerName(u), "0.25"}
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"customers"}, []string{"customer_id", "name", "price_per_click"}, pgx.CopyFromRows(rows)); err != nil {
		drop()
		return "", nil, fmt.Errorf("chaos: customers: %w", err)
	}
	return u.String(), drop, nil
}

// redisServer is a redis-server of the run's own, with an append-only file fsynced at every write, so
// a shutdown and a start again on the same directory keep every acknowledged write.
type redisServer struct {
	bin, dir string
	port     int
}

func (s *redisServer) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

func (s *redisServer) start(ctx context.Context) error {
	out, err := exec.CommandContext(ctx, s.bin, "--daemonize", "yes", "--bind", "127.0.0.1", "--port", strconv.Itoa(s.port),
		"--save", "", "--appendonly", "yes", "--appendfsync", "always", "--dir", s.dir,
		"--pidfile", filepath.Join(s.dir, "redis.pid"), "--logfile", filepath.Join(s.dir, "redis.log")).CombinedOutput()
	if err != nil {
		return fmt.Errorf("chaos: start %s (needed for the run's own Redis; deploy/local/stack up installs it): %w\n%s", s.bin, err, out)
	}
	c := redis.NewClient(&redis.Options{Addr: s.addr()})
	defer c.Close()
	deadline := time.Now().Add(20 * time.Second)
	for c.Ping(ctx).Err() != nil {
		if time.Now().After(deadline) {
			return fmt.Errorf("chaos: redis-server on %s did not answer within 20s (log: %s)", s.addr(), filepath.Join(s.dir, "redis.log"))
		}
		if !sleepUntil(ctx, time.Now().Add(50*time.Millisecond)) {
			return context.Cause(ctx)
		}
	}
	return nil
}

// shutdown stops the server (it flushes its append-only file) and waits until it no longer answers.
func (s *redisServer) shutdown(ctx context.Context) error {
	c := redis.NewClient(&redis.Options{Addr: s.addr(), MaxRetries: -1})
	defer c.Close()
	_ = c.Shutdown(ctx).Err() // the connection closes under the command
	deadline := time.Now().Add(20 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", s.addr(), 200*time.Millisecond)
		if err != nil {
			return nil
		}
		conn.Close()
		if time.Now().After(deadline) {
			return fmt.Errorf("redis on %s still answers 20s after SHUTDOWN", s.addr())
		}
		if !sleepUntil(ctx, time.Now().Add(50*time.Millisecond)) {
			return context.Cause(ctx)
		}
	}
}

// stop ends the server whatever its state (by its pid file).
func (s *redisServer) stop() {
	b, err := os.ReadFile(filepath.Join(s.dir, "redis.pid"))
	if err != nil {
		return
	}
	if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// WriteChaos writes a chaos run's result as text: the checks, the throttling figures and the schedule
// with what each fault did.
func WriteChaos(w io.Writer, res ChaosResult) error {
	var b strings.Builder
	fmt.Fprintf(&b, "chaos seed %d: %d events of %d users over %s → %d sessions, %d lake objects; drained %.1fs after the load\n",
		res.Seed, res.Produced, res.Users, res.Duration, res.Sessions, res.Objects, res.DrainSeconds)
	b.WriteString("sessions = the PostgreSQL oracle; per-user counts, last access and names exact; every click_id once in raw and once in events: ok\n")
	for _, t := range res.Throttles {
		fmt.Fprintf(&b, "throttle %-8s at %5.1fs: %s calls/s before %.1f, during %.1f (%.0f%%), after %.1f; caught up %.1fs after the burst\n",
			t.Service, t.At.Seconds(), or(t.Operation, "all"), t.Before, t.During, 100*t.During/max(t.Before, 1e-9), t.After, t.CatchUpSeconds)
		for _, op := range slices.Sorted(keysOf(t.ByOperation)) {
			if v := t.ByOperation[op]; v[0]+v[1] > 0 {
				fmt.Fprintf(&b, "    %-22s before %5.1f/s  during %5.1f/s\n", op, v[0], v[1])
			}
		}
	}
	b.WriteString("faults:\n" + scheduleText(res.Faults))
	_, err := io.WriteString(w, b.String())
	return err
}
