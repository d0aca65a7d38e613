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
	"maps"
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
	// ReadMode is how both applications read the stream: "polling" (GetRecords) or "efo" (enhanced
	// fan-out: SubscribeToShard through EFOURL, behind a fault proxy of its own that takes the latency,
	// resets and stalls aimed at Kinesis; the throttling and errors hit the calls that go through Kinesis'
	// HTTP layer). Default: polling.
	ReadMode string
	// EFOURL is the enhanced fan-out endpoint (https://127.0.0.1:port: the local stack's fan-out proxy,
	// whose certificate names 127.0.0.1). Required with efo.
	EFOURL string

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
	setDefault(&c.RedisServer, "redis-server")
	setDefault(&c.ReadMode, "polling")
	switch {
	case c.ReadMode != "polling" && c.ReadMode != "efo":
		return fmt.Errorf("chaos: read mode must be polling or efo, not %q", c.ReadMode)
	case c.ReadMode == "efo" && c.EFOURL == "":
		return errors.New("chaos: the efo read mode needs EFOURL (the stack's fan-out proxy)")
	}
	setDefault(&c.Seed, 1)
	setDefault(&c.Duration, 60*time.Second)
	if c.Duration < 20*time.Second {
		return fmt.Errorf("chaos: duration %s is shorter than 20s: no room for the faults", c.Duration)
	}
	setDefault(&c.Rate, 100)
	setDefault(&c.Users, 200)
	setDefault(&c.Shards, 4)
	setDefault(&c.ConsumeWorkers, 3)
	setDefault(&c.ArchiveWorkers, 2)
	if c.ConsumeWorkers < 2 || c.ArchiveWorkers < 1 {
		return errors.New("chaos: at least 2 consume workers and 1 archive worker")
	}
	setDefault(&c.FailoverTime, 3*time.Second)
	setDefault(&c.ListenHost, "127.0.0.1")
	c.Progress = orNop(c.Progress)
	var err error
	c.LogDir, err = orTempDir(c.LogDir, "clickfleet-chaos-")
	return err
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
	ReadMode   string           `json:"read_mode"`
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
	r := newChaosRun(ctx, kin, ddb, cfg)
	defer r.stack.release()
	if err := runSteps(ctx, r.setUp, r.startRedis, r.startProxies, r.startWorkers); err != nil {
		return r.res, err
	}
	if err := r.schedule(); err != nil {
		return r.res, err
	}
	r.startLoad(ctx)
	r.startFaults(ctx)
	err := runSteps(ctx, r.watch, r.drain, r.stopWorkers, r.checkSessions, r.checkUsers, r.checkLake)
	return r.res, err
}

// chaosRun is one run of Chaos: its resources, its own Redis, the fault proxies in front of every
// server, the two fleets, the load, the faults and what they did.
type chaosRun struct {
	scenarioRun
	cfg ChaosConfig
	res ChaosResult

	consumeLeases, archiveLeases string
	targets                      actorTargets // of the consume workers
	bucket                       string       // the lake
	users                        []string
	pgDB                         string // the customers database's DSN
	proxiedPG                    string // and through its proxy

	redis  *redisServer
	rdb    *redis.Client // the run's Redis, directly
	px     *faults.Proxies
	layers map[string]*faults.AWSLayer // AWS service → its fault layer
	front  map[string]string           // server → the address of its proxy, which the workers use

	consumeFleet, archiveFleet *Fleet
	fleetOf                    map[string]*Fleet // worker id → its fleet
	workerIDs                  []string

	start    time.Time // of the load
	load     chaosLoad
	prodDone chan error
	loadEnd  time.Time

	faults     sync.WaitGroup // the faults' goroutines
	restarts   sync.WaitGroup // restarts of the workers that ended on their own
	fmu        sync.Mutex     // guards res.Faults' notes, unexpected and throttles while faults run
	unexpected []string
	throttles  []*ThrottleFigure // by fault

	rows map[string]messages.Session // the session rows, once the workers have stopped
}

func newChaosRun(ctx context.Context, kin KinesisAPI, ddb DynamoDBAPI, cfg ChaosConfig) *chaosRun {
	id := fmt.Sprintf("chaos-%d-%d", cfg.Seed, time.Now().UnixNano())
	users := make([]string, cfg.Users)
	for i := range users {
		users[i] = fmt.Sprintf("u%04d", i)
	}
	return &chaosRun{scenarioRun: newScenarioRun(ctx, kin, ddb, id), cfg: cfg,
		res:           ChaosResult{Seed: cfg.Seed, ReadMode: cfg.ReadMode, Duration: cfg.Duration, Users: cfg.Users, LogDir: cfg.LogDir},
		consumeLeases: id + "-leases", archiveLeases: id + "-archive-leases", targets: actorTargetsOf(id), bucket: id, users: users}
}

// setUp creates the run's streams, tables, bucket and customers database; the release deletes them.
func (r *chaosRun) setUp(ctx context.Context) error {
	if err := r.stack.stream(ctx, r.id, r.cfg.Shards); err != nil {
		return err
	}
	if err := r.stack.outputStreams(ctx, r.targets, r.cfg.Shards); err != nil {
		return err
	}
	for _, t := range []string{r.consumeLeases, r.archiveLeases} {
		if err := r.stack.leaseTable(ctx, t); err != nil {
			return err
		}
	}
	if err := r.stack.sessionsTable(ctx, r.targets.sessions); err != nil {
		return err
	}
	if _, err := provision.EnsureBucket(ctx, r.cfg.S3, r.bucket); err != nil {
		return err
	}
	r.stack.onRelease(func(ctx context.Context) { deleteBucket(ctx, r.cfg.S3, r.bucket) })
	pgDB, dropDB, err := customersDatabase(ctx, r.cfg.PostgresDSN, strings.ReplaceAll(r.id, "-", "_"), r.users)
	if err != nil {
		return err
	}
	r.stack.onRelease(func(context.Context) { dropDB() })
	r.pgDB = pgDB
	return nil
}

// startRedis starts a Redis of the run's own, so it can be restarted.
func (r *chaosRun) startRedis(ctx context.Context) error {
	dir := filepath.Join(r.cfg.LogDir, "redis")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	r.redis = &redisServer{bin: r.cfg.RedisServer, dir: dir, port: port}
	if err := r.redis.start(ctx); err != nil {
		return err
	}
	r.stack.onRelease(func(context.Context) { r.redis.stop() })
	r.rdb = redis.NewClient(&redis.Options{Addr: r.redis.addr()})
	r.stack.onRelease(func(context.Context) { r.rdb.Close() })
	return nil
}

// startProxies puts the faults between the workers and every server: worker → Toxiproxy → (AWS layer)
// → server.
func (r *chaosRun) startProxies(context.Context) error {
	r.px = faults.NewProxies()
	r.stack.onRelease(func(context.Context) { r.px.Close() })
	upstream, err := r.startAWSLayers()
	if err != nil {
		return err
	}
	pgURL, err := url.Parse(r.pgDB)
	if err != nil || pgURL.Host == "" {
		return fmt.Errorf("chaos: the PostgreSQL DSN must be a URL (postgres://host:port/db): %q", r.cfg.PostgresDSN)
	}
	upstream["redis"], upstream["postgres"] = r.redis.addr(), pgURL.Host
	r.front = map[string]string{}
	for _, srv := range chaosServers {
		addr, err := r.px.Add(srv, net.JoinHostPort(r.cfg.ListenHost, "0"), upstream[srv])
		if err != nil {
			return err
		}
		r.front[srv] = addr
	}
	proxiedPG := *pgURL
	proxiedPG.Host = r.front["postgres"]
	r.proxiedPG = proxiedPG.String()
	return r.startEFOProxy()
}

// efoProxy is the fault proxy in front of the enhanced fan-out endpoint (efo): the Kinesis faults of
// the proxies reach the subscriptions through it.
const efoProxy = "kinesis-efo"

// startEFOProxy puts a fault proxy in front of the enhanced fan-out endpoint (efo only); TLS passes
// through it, so the workers speak to it as to the endpoint.
func (r *chaosRun) startEFOProxy() error {
	if r.cfg.ReadMode != "efo" {
		return nil
	}
	u, err := url.Parse(r.cfg.EFOURL)
	if err != nil || u.Host == "" {
		return fmt.Errorf("chaos: the enhanced fan-out endpoint must be a URL (https://host:port): %q", r.cfg.EFOURL)
	}
	addr, err := r.px.Add(efoProxy, net.JoinHostPort(r.cfg.ListenHost, "0"), u.Host)
	if err != nil {
		return err
	}
	r.front[efoProxy] = addr
	return nil
}

// proxiesOf are the fault proxies a proxy fault on target applies to: its own, and for Kinesis in the
// efo mode the fan-out endpoint's too.
func (r *chaosRun) proxiesOf(target string) []string {
	if _, ok := r.front[efoProxy]; ok && target == "kinesis" {
		return []string{target, efoProxy}
	}
	return []string{target}
}

// startAWSLayers starts the fault layers of Kinesis, DynamoDB and S3 and returns their addresses by
// service.
func (r *chaosRun) startAWSLayers() (map[string]string, error) {
	r.layers = map[string]*faults.AWSLayer{}
	upstream := map[string]string{}
	for i, svc := range []struct{ name, url string }{{"kinesis", r.cfg.KinesisURL}, {"dynamodb", r.cfg.DynamoDBURL}, {"s3", r.cfg.S3URL}} {
		l, err := faults.NewAWSLayer(svc.url, r.cfg.Seed+uint64(i))
		if err != nil {
			return nil, err
		}
		addr, err := l.Listen(net.JoinHostPort(r.cfg.ListenHost, "0"))
		if err != nil {
			return nil, err
		}
		r.stack.onRelease(func(context.Context) { l.Close() })
		r.layers[svc.name], upstream[svc.name] = l, addr
	}
	return upstream, nil
}

// startWorkers starts the consume workers (c1 …) and the archive workers (a1 …), every one through the
// proxies; the release stops them.
func (r *chaosRun) startWorkers(ctx context.Context) error {
	r.newFleets()
	r.fleetOf = map[string]*Fleet{}
	for i := 1; i <= r.cfg.ConsumeWorkers; i++ {
		r.workerIDs = append(r.workerIDs, fmt.Sprintf("c%d", i))
		r.fleetOf[fmt.Sprintf("c%d", i)] = r.consumeFleet
	}
	for i := 1; i <= r.cfg.ArchiveWorkers; i++ {
		r.workerIDs = append(r.workerIDs, fmt.Sprintf("a%d", i))
		r.fleetOf[fmt.Sprintf("a%d", i)] = r.archiveFleet
	}
	r.stack.stopFleets(r.consumeFleet, r.archiveFleet)
	for _, w := range r.workerIDs {
		if err := r.startWorker(ctx, w); err != nil {
			return err
		}
	}
	return nil
}

// newFleets configures the two fleets. The first consume worker also runs the names sync, the fleet's
// one PostgreSQL client.
func (r *chaosRun) newFleets() {
	common := []string{"--stream", r.id, "--redis-url", "redis://" + r.front["redis"] + "/0", "--key-prefix", r.prefix, "--geo-mmdb", "",
		"--failover-time", r.cfg.FailoverTime.String(), "--take-interval", "500ms", "--idle-time", "100ms", "--shard-sync-interval", "2s", "--max-records", "500"}
	env := r.workerEnv()
	common = append(common, "--read-mode", r.cfg.ReadMode)
	if addr, ok := r.front[efoProxy]; ok {
		common = append(common, "--efo-endpoint", "https://"+addr)
	}
	consume := append(slices.Clone(common), "--lease-table", r.consumeLeases, "--processor", "actors")
	consume = append(append(consume, r.targets.args()...), "--flush-interval", "200ms", "--flush-max-records", "200")
	r.consumeFleet = &Fleet{Binary: r.cfg.Binary, Command: "consume", LogDir: r.cfg.LogDir, Env: env, Args: consume}
	r.archiveFleet = &Fleet{Binary: r.cfg.Binary, Command: "archive", LogDir: r.cfg.LogDir, Env: env, Args: append(slices.Clone(common),
		"--lease-table", r.archiveLeases, "--lake-url", "s3://"+r.bucket+"/", "--s3-path-style", "true", "--buffer-bytes", "65536",
		"--buffer-interval", "2s", "--buffer-interval-unchecked", "--shutdown-timeout", "30s", "--put-timeout", "10s")}
	r.consumeFleet.WorkerArgs = map[string][]string{"c1": {"--names-sync", "--pg-dsn", r.proxiedPG, "--sync-interval", "2s"}}
}

// workerEnv points the workers' AWS SDK at the proxies, with local credentials and region unless set.
func (r *chaosRun) workerEnv() []string {
	env := []string{"AWS_ENDPOINT_URL_KINESIS=http://" + r.front["kinesis"], "AWS_ENDPOINT_URL_DYNAMODB=http://" + r.front["dynamodb"],
		"AWS_ENDPOINT_URL_S3=http://" + r.front["s3"]}
	for _, k := range []string{"AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
		if os.Getenv(k) == "" {
			env = append(env, k+"=local")
		}
	}
	if os.Getenv("AWS_REGION") == "" {
		env = append(env, "AWS_REGION=us-east-1")
	}
	return env
}

// startWorker starts (or restarts) worker w in its fleet.
func (r *chaosRun) startWorker(ctx context.Context, w string) error {
	return r.fleetOf[w].Start(ctx, w)
}

// exited returns the workers of both fleets that ended on their own, with their exits.
func (r *chaosRun) exited() map[string]error {
	out := r.consumeFleet.Exited()
	maps.Copy(out, r.archiveFleet.Exited())
	return out
}

// schedule draws the faults from the seed, or checks the schedule given that it fits the run.
func (r *chaosRun) schedule() error {
	r.res.Faults = ChaosSchedule(r.cfg.Seed, r.cfg.Duration, r.cfg.FailoverTime, r.workerIDs)
	if len(r.cfg.Schedule) > 0 {
		r.res.Faults = slices.Clone(r.cfg.Schedule)
		for i := range r.res.Faults {
			r.res.Faults[i].Note = ""
			if f := r.res.Faults[i]; f.At+f.For > r.cfg.Duration || (r.fleetOf[f.Target] == nil && !slices.Contains(chaosServers, f.Target)) {
				return fmt.Errorf("chaos: schedule entry %d (%s) does not fit the run: target unknown or past --duration", i, f)
			}
		}
	}
	r.cfg.Progress(fmt.Sprintf("seed %d: %d consume + %d archive workers (%s) on %d shards, %.0f events/s for %s, %d faults (logs in %s)",
		r.cfg.Seed, r.cfg.ConsumeWorkers, r.cfg.ArchiveWorkers, r.cfg.ReadMode, r.cfg.Shards, r.cfg.Rate, r.cfg.Duration, len(r.res.Faults), r.cfg.LogDir))
	return nil
}

// startLoad starts the producer.
func (r *chaosRun) startLoad(ctx context.Context) {
	r.load.lastPut = map[string]string{}
	r.start = time.Now()
	r.prodDone = make(chan error, 1)
	go func() { r.prodDone <- produceChaos(ctx, r.kin, r.id, r.cfg, r.users, r.start, r.load.stored) }()
}

// startFaults runs each fault in its own goroutine at its time; the release stops them and waits for
// them (and for the restarts of workers), before the fleets stop.
func (r *chaosRun) startFaults(ctx context.Context) {
	fctx, stop := context.WithCancel(ctx)
	r.stack.onRelease(func(context.Context) {
		stop()
		r.faults.Wait()
		r.restarts.Wait()
	})
	r.throttles = make([]*ThrottleFigure, len(r.res.Faults))
	for i, f := range r.res.Faults {
		r.faults.Go(func() { r.runFault(fctx, i, f) })
	}
}

// runFault waits until fault i is due, then applies it, holds it for its time and reverts it.
func (r *chaosRun) runFault(ctx context.Context, i int, f ChaosFault) {
	if !sleepUntil(ctx, r.start.Add(f.At)) {
		return
	}
	r.cfg.Progress(fmt.Sprintf("%5.1fs %s %s %s", time.Since(r.start).Seconds(), f.Kind, f.Target, f.Detail))
	switch f.Kind {
	case FaultKill, FaultTerm, FaultStop:
		r.processFault(ctx, i, f)
	case FaultRedisRestart:
		if err := r.redis.shutdown(r.stack.bg); err != nil {
			r.note(i, "shutdown: "+err.Error())
		}
		holdFault(ctx, f)
		if err := r.redis.start(r.stack.bg); err != nil {
			r.note(i, "start: "+err.Error())
		}
	case FaultThrottle, FaultErrors:
		r.awsFault(ctx, i, f)
	case FaultLatency, FaultReset, FaultStall:
		r.proxyFault(ctx, i, f)
	}
}

// holdFault waits for the fault's time (or the context's end).
func holdFault(ctx context.Context, f ChaosFault) { sleepUntil(ctx, time.Now().Add(f.For)) }

// processFault kills, terminates or stops a worker; after the fault's time it continues it (SIGSTOP)
// or starts it again.
func (r *chaosRun) processFault(ctx context.Context, i int, f ChaosFault) {
	fl := r.fleetOf[f.Target]
	switch f.Kind {
	case FaultKill:
		fl.Kill(f.Target)
	case FaultTerm:
		if err := fl.Terminate(f.Target, 60*time.Second); err != nil {
			r.note(i, "SIGTERM: "+err.Error())
			r.addUnexpected(fmt.Sprintf("%s at SIGTERM (%.1fs): %v", f.Target, f.At.Seconds(), err))
		} else {
			r.note(i, "exited 0")
		}
	case FaultStop:
		_ = fl.Signal(f.Target, syscall.SIGSTOP)
	}
	holdFault(ctx, f)
	if f.Kind == FaultStop {
		_ = fl.Signal(f.Target, syscall.SIGCONT)
		return
	}
	if err := r.startWorker(r.stack.bg, f.Target); err != nil {
		r.note(i, "restart: "+err.Error())
	} else {
		r.note(i, fmt.Sprintf("restarted, ready at %.1fs", time.Since(r.start).Seconds()))
	}
}

// awsFault answers an AWS service's calls with throttling or other errors for the fault's time; a
// throttling burst is measured.
func (r *chaosRun) awsFault(ctx context.Context, i int, f ChaosFault) {
	l := r.layers[f.Target]
	fault := faults.Fault{Kind: faults.ThroughputExceeded, Fraction: 1}
	if f.Kind == FaultErrors {
		var pct int
		var kind string
		fmt.Sscanf(f.Detail, "%s %d%%", &kind, &pct)
		fault = faults.Fault{Kind: faults.Kind(kind), Fraction: float64(pct) / 100}
	}
	if err := l.Set(fault); err != nil {
		r.note(i, err.Error())
		return
	}
	began := time.Now()
	holdFault(ctx, f)
	l.Clear()
	ended := time.Now()
	if f.Kind == FaultThrottle {
		r.measureThrottle(ctx, i, f, l, began, ended)
	}
}

// measureThrottle fills in the figure of throttling burst i: the calls per second before, during and
// after it, and how long after it every record put until then was checkpointed.
func (r *chaosRun) measureThrottle(ctx context.Context, i int, f ChaosFault, l *faults.AWSLayer, began, ended time.Time) {
	op := ""
	if f.Target == "kinesis" && r.cfg.ReadMode == "polling" {
		op = "GetRecords" // the efo mode's reads are not HTTP calls the layer sees
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
	want := r.load.snapshot()
	for ctx.Err() == nil {
		if ok, err := r.checkpointed(ctx, want); err == nil && ok {
			tf.CatchUpSeconds = time.Since(ended).Seconds()
			break
		}
		sleepUntil(ctx, time.Now().Add(250*time.Millisecond))
	}
	sleepUntil(ctx, ended.Add(6*time.Second))
	tf.After, _ = l.Rate(op, ended, ended.Add(5*time.Second))
	r.fmu.Lock()
	r.throttles[i] = tf
	r.fmu.Unlock()
	r.note(i, fmt.Sprintf("%s calls/s before %.1f, during %.1f, after %.1f; caught up %.1fs after", or(op, "all"), tf.Before, tf.During, tf.After, tf.CatchUpSeconds))
}

// proxyFault adds latency, resets or a stall to every connection to a server for the fault's time.
func (r *chaosRun) proxyFault(ctx context.Context, i int, f ChaosFault) {
	added := map[string][]string{}
	for _, px := range r.proxiesOf(f.Target) {
		names, err := r.addToxic(px, f)
		if err != nil {
			r.note(i, err.Error())
			continue
		}
		added[px] = names
	}
	holdFault(ctx, f)
	for px, names := range added {
		if err := r.px.Remove(px, names); err != nil {
			r.note(i, err.Error())
		}
	}
}

// addToxic applies proxy fault f to the proxy named px and returns the toxics' names.
func (r *chaosRun) addToxic(px string, f ChaosFault) ([]string, error) {
	switch f.Kind {
	case FaultLatency:
		var lat, jit int
		fmt.Sscanf(f.Detail, "%dms ± %dms", &lat, &jit)
		return r.px.Latency(px, time.Duration(lat)*time.Millisecond, time.Duration(jit)*time.Millisecond)
	case FaultReset:
		return r.px.ResetPeer(px, 0)
	case FaultStall:
		return r.px.Timeout(px, time.Second)
	}
	return nil, fmt.Errorf("chaos: %s is not a proxy fault", f.Kind)
}

// note adds what happened to fault i.
func (r *chaosRun) note(i int, s string) {
	r.fmu.Lock()
	defer r.fmu.Unlock()
	if r.res.Faults[i].Note != "" {
		r.res.Faults[i].Note += "; "
	}
	r.res.Faults[i].Note += s
}

// checkpointed tells whether both applications have checkpointed every shard of want at or past its
// sequence number.
func (r *chaosRun) checkpointed(ctx context.Context, want map[string]string) (bool, error) {
	for _, t := range []string{r.consumeLeases, r.archiveLeases} {
		leases, err := lease.NewTable(r.ddb, t).List(ctx)
		if err != nil {
			return false, err
		}
		got := map[string]lease.Checkpoint{}
		for _, l := range leases {
			got[l.Key] = l.Checkpoint
		}
		if !caughtUp(got, want) {
			return false, nil
		}
	}
	return true, nil
}

// caughtUp tells whether every shard of want has a checkpoint in got at or past want's sequence number
// (a starting sentinel, TRIM_HORIZON, is behind every record; SHARD_END past all).
func caughtUp(got map[string]lease.Checkpoint, want map[string]string) bool {
	for shard, seq := range want {
		if got[shard].Compare(lease.Checkpoint{SequenceNumber: seq}) < 0 {
			return false
		}
	}
	return true
}

// watch restarts the workers that end on their own, and notes them, until the producer is done; then
// it waits until every fault has been reverted (throttle figures take a few seconds more).
func (r *chaosRun) watch(ctx context.Context) error {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	var prodErr error
	for running := true; running; {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case prodErr = <-r.prodDone:
			running = false
		case <-tick.C:
		}
		for w, err := range r.exited() {
			msg := fmt.Sprintf("%s exited on its own at %.1fs: %v", w, time.Since(r.start).Seconds(), err)
			r.cfg.Progress(msg)
			r.addUnexpected(msg)
			r.restarts.Go(func() { _ = r.startWorker(r.stack.bg, w) })
		}
	}
	if prodErr != nil {
		return fmt.Errorf("producer: %w", prodErr)
	}
	r.loadEnd = time.Now()
	r.cfg.Progress(fmt.Sprintf("%5.1fs load stopped: %d events", time.Since(r.start).Seconds(), len(r.load.events())))
	r.faults.Wait()
	return nil
}

// drain waits until both applications have checkpointed every shard's last record, restarting the
// workers that end on their own meanwhile; it gives up 3 minutes + the duration after the load.
func (r *chaosRun) drain(ctx context.Context) error {
	want := r.load.snapshot()
	deadline := time.Now().Add(3*time.Minute + r.cfg.Duration)
	for {
		ok, err := r.checkpointed(ctx, want)
		if err == nil && ok {
			break
		}
		for w, err := range r.exited() {
			r.addUnexpected(fmt.Sprintf("%s exited on its own while draining: %v", w, err))
			_ = r.startWorker(r.stack.bg, w)
		}
		if time.Now().After(deadline) {
			why := fmt.Sprintf("chaos seed %d: not every record was checkpointed by both applications %s after the load",
				r.cfg.Seed, time.Since(r.loadEnd).Round(time.Second))
			if err != nil {
				return fmt.Errorf("%s: %w\n%s", why, err, scheduleText(r.res.Faults))
			}
			return fmt.Errorf("%s\n%s", why, scheduleText(r.res.Faults))
		}
		if !sleepUntil(ctx, time.Now().Add(500*time.Millisecond)) {
			return context.Cause(ctx)
		}
	}
	r.res.DrainSeconds = time.Since(r.loadEnd).Seconds()
	return nil
}

// stopWorkers stops every worker with SIGTERM (the final clean stop writes the closing and pending
// session rows), fills in the result and fails if a worker did not stop cleanly or any ended on its own.
func (r *chaosRun) stopWorkers(context.Context) error {
	var stopErrs []string
	for _, fl := range []*Fleet{r.consumeFleet, r.archiveFleet} {
		for _, w := range fl.IDs() {
			if err := fl.Terminate(w, 90*time.Second); err != nil {
				stopErrs = append(stopErrs, err.Error())
			}
		}
	}
	for _, t := range r.throttles {
		if t != nil {
			r.res.Throttles = append(r.res.Throttles, *t)
		}
	}
	r.res.Unexpected = r.unexpected
	r.res.Produced = len(r.load.events())
	r.cfg.Progress(fmt.Sprintf("drained %.1fs after the load; workers stopped; comparing with the oracle", r.res.DrainSeconds))
	if len(stopErrs) > 0 {
		return r.fail("the final SIGTERM: %s", strings.Join(stopErrs, "; "))
	}
	if len(r.unexpected) > 0 {
		return r.fail("workers ended on their own: %s", strings.Join(r.unexpected, "; "))
	}
	return nil
}

// fail is a failed check, with the seed and the fault schedule.
func (r *chaosRun) fail(format string, args ...any) error {
	return fmt.Errorf("chaos seed %d: %s\nfault schedule:\n%s", r.cfg.Seed, fmt.Sprintf(format, args...), scheduleText(r.res.Faults))
}

// checkSessions compares the session rows with the oracle's; a difference names the session and shows
// its user's events and state.
func (r *chaosRun) checkSessions(ctx context.Context) error {
	evs := r.load.events()
	oracle, err := oracleSessions(ctx, r.cfg.PostgresDSN, evs)
	if err != nil {
		return err
	}
	got, err := scanChaosSessions(ctx, r.ddb, r.targets.sessions)
	if err != nil {
		return err
	}
	r.rows = got
	r.res.Sessions = len(oracle)
	d := firstSessionDiff(got, oracle)
	if d == "" {
		return nil
	}
	// The user's events and its state, for the investigation.
	user := strings.SplitN(strings.TrimPrefix(d, "session "), "_", 2)[0]
	var b strings.Builder
	for _, e := range evs {
		if e.user == user {
			fmt.Fprintf(&b, "\n    event %d (%s) at %s/%s", e.ts, time.UnixMilli(e.ts).UTC().Format("15:04:05.000"), e.shard, e.seq)
		}
	}
	h, _ := r.rdb.HGetAll(ctx, session.UserKey(r.prefix, user)).Result()
	return r.fail("sessions differ from the oracle (%d rows, the oracle has %d): %s\n  user %s's events:%s\n  its state in Redis: %v",
		len(got), len(oracle), d, user, b.String(), h)
}

// checkUsers checks each user's events in its session rows, its last access and its name in Redis.
func (r *chaosRun) checkUsers(ctx context.Context) error {
	perUser := map[string]int64{}
	lastAccess := map[string]int64{}
	for _, e := range r.load.events() {
		perUser[e.user]++
		lastAccess[e.user] = max(lastAccess[e.user], e.ts)
	}
	if err := r.checkCounts(perUser); err != nil {
		return err
	}
	// Last access and names in Redis.
	for _, u := range slices.Sorted(keysOf(perUser)) {
		h, err := r.rdb.HGetAll(ctx, session.UserKey(r.prefix, u)).Result()
		if err != nil {
			return fmt.Errorf("read user %s: %w", u, err)
		}
		if h[session.FieldLastAccess] != strconv.FormatInt(lastAccess[u], 10) {
			return r.fail("user %s: last_access_ms %q, want %d (the latest of its events)", u, h[session.FieldLastAccess], lastAccess[u])
		}
	}
	for _, u := range r.users {
		name, err := r.rdb.HGet(ctx, session.UserKey(r.prefix, u), session.FieldName).Result()
		if err != nil || name != customerName(u) {
			return r.fail("user %s: name %q (%v) in Redis, want %q from PostgreSQL (the names sync)", u, name, err, customerName(u))
		}
	}
	return nil
}

// checkCounts checks that each user's session rows count the events produced for it.
func (r *chaosRun) checkCounts(perUser map[string]int64) error {
	counted := map[string]int64{}
	for _, s := range r.rows {
		counted[s.UserID] += s.EventCount
	}
	for _, u := range r.users {
		if counted[u] != perUser[u] {
			return r.fail("user %s: its sessions count %d events, %d were produced", u, counted[u], perUser[u])
		}
	}
	return nil
}

// checkLake checks that every produced click_id is in the lake exactly once in raw and once in events,
// and nothing else.
func (r *chaosRun) checkLake(ctx context.Context) error {
	raw, rows, objects, err := readChaosLake(ctx, r.cfg.S3, r.bucket)
	if err != nil {
		return err
	}
	r.res.Objects = objects
	evs := r.load.events()
	for name, n := range map[string]map[string]int{"raw": raw, "events": rows} {
		for _, e := range evs {
			if n[e.click] != 1 {
				return r.fail("click %s (user %s, %s/%s) is in %d %s records of the lake, want 1", e.click, e.user, e.shard, e.seq, n[e.click], name)
			}
		}
		if len(n) != len(evs) {
			return r.fail("the lake's %s objects hold %d distinct click_ids, %d were produced", name, len(n), len(evs))
		}
	}
	return nil
}

// addUnexpected notes a worker that ended on its own or did not stop cleanly.
func (r *chaosRun) addUnexpected(msg string) {
	r.fmu.Lock()
	defer r.fmu.Unlock()
	r.unexpected = append(r.unexpected, msg)
}

// chaosLoad is what the producer stored: every event, and each shard's last sequence number.
type chaosLoad struct {
	mu      sync.Mutex
	evs     []chaosEvent
	lastPut map[string]string // shard → last sequence put
}

// stored adds events the stream took.
func (l *chaosLoad) stored(put []chaosEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.evs = append(l.evs, put...)
	for _, e := range put {
		if seqLess(l.lastPut[e.shard], e.seq) {
			l.lastPut[e.shard] = e.seq
		}
	}
}

// snapshot returns each shard's last sequence number put so far.
func (l *chaosLoad) snapshot() map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.lastPut)
}

// events returns the events stored so far.
func (l *chaosLoad) events() []chaosEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.evs
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
	fmt.Fprintf(&b, "chaos seed %d (%s): %d events of %d users over %s → %d sessions, %d lake objects; drained %.1fs after the load\n",
		res.Seed, or(res.ReadMode, "polling"), res.Produced, res.Users, res.Duration, res.Sessions, res.Objects, res.DrainSeconds)
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
