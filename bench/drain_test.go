package bench_test

import (
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/redis/go-redis/v9"

	"github.com/clickfleet/clickfleet/bench"
	"github.com/clickfleet/clickfleet/internal/testenv"
)

// The drain scenario runs end to end on small numbers with each processor, each one's results verified
// (count and actors by Drain itself, lambda here), so the harness cannot rot.
func TestDrainScenario(t *testing.T) {
	kin, ddb, rdb := testenv.Kinesis(t), testenv.DynamoDB(t), testenv.Redis(t)
	const records, users = 1000, 50
	servers := stackServers(t)
	for _, proc := range []string{"count", "actors", "lambda"} {
		t.Run(proc, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			rec := &sessionRows{DynamoDBAPI: ddb}
			before := time.Now()
			res, err := bench.Drain(ctx, kin, rec, bench.DrainConfig{Shards: 2, Records: records, Users: users, Writers: 2,
				Workers: 2, Processor: proc, Redis: rdb, Servers: servers, Progress: func(s string) { t.Log(s) }})
			if err != nil {
				t.Fatal(err)
			}
			after := time.Now()
			if res.BareRate <= 0 || res.WorkerRate <= 0 || res.Ratio <= 0 || (proc != "lambda" && !res.Verified) {
				t.Fatalf("result not filled in: %+v", res)
			}
			checkDrainCPU(t, res, servers)
			// Rows on triggers: a start and a close at most (a lease moving between the two workers adds a
			// row at the handoff), not one per flush.
			if proc == "actors" && (res.Sessions == 0 || res.SessionWritesPerSession <= 0 || res.SessionWritesPerSession > 3) {
				t.Fatalf("session writes: %d for %d sessions (%.2f per session)", res.SessionWrites, res.Sessions, res.SessionWritesPerSession)
			}
			if n := rec.batchRows(); proc == "actors" && res.SessionWrites != n {
				t.Errorf("session writes reported %d, DynamoDB accepted %d session rows in BatchWriteItem calls", res.SessionWrites, n)
			}
			if proc == "lambda" {
				w := window{from: before.UnixMilli(), to: after.UnixMilli()}
				checkLambdaAccess(t, rdb, res.Stream, users, w)
				checkLambdaSessions(t, rec.all(), users, w)
			}
		})
	}
}

// stackServers are the servers of the stack in CLICKFLEET_STACK_DIR (set by make test and the stack's
// env), or none without it.
func stackServers(t *testing.T) []bench.Server {
	t.Helper()
	dir := os.Getenv("CLICKFLEET_STACK_DIR")
	if dir == "" {
		t.Log("CLICKFLEET_STACK_DIR not set: the servers' CPU is not measured")
		return nil
	}
	servers, err := bench.StackServers(dir)
	if err != nil {
		t.Fatal(err)
	}
	return servers
}

// checkDrainCPU checks that a drain measured CPU time: this process's in each phase, and the servers'
// over the run (the Kinesis emulator serves both phases).
func checkDrainCPU(t *testing.T, res bench.DrainResult, servers []bench.Server) {
	t.Helper()
	if res.BareCPUPerRecord <= 0 || res.WorkersCPUPerRecord <= 0 || res.CPURatio <= 0 {
		t.Errorf("CPU per record: bare loop %.0f ns, workers %.0f ns (%.2f×), want both above 0",
			res.BareCPUPerRecord, res.WorkersCPUPerRecord, res.CPURatio)
	}
	if len(res.Servers) != len(servers) {
		t.Fatalf("CPU of %d servers, want %d: %+v", len(res.Servers), len(servers), res.Servers)
	}
	var total float64
	for _, s := range res.Servers {
		if s.BareCPUSeconds < 0 || s.WorkersCPUSeconds < 0 {
			t.Errorf("server %s: negative CPU time %+v", s.Name, s)
		}
		total += s.BareCPUSeconds + s.WorkersCPUSeconds
	}
	if len(servers) > 0 && total <= 0 {
		t.Errorf("the servers used no CPU in the run: %+v", res.Servers)
	}
}

// sessionRows passes every call to DynamoDB on and remembers the items put that carry a session_id: the
// lambda baseline's session rows (Drain deletes their table before it returns); and it counts the
// session rows DynamoDB accepted in BatchWriteItem calls (the actors').
type sessionRows struct {
	bench.DynamoDBAPI
	mu      sync.Mutex
	rows    []map[string]dtypes.AttributeValue
	batched int64
}

func (r *sessionRows) BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	out, err := r.DynamoDBAPI.BatchWriteItem(ctx, in, opts...)
	if err != nil {
		return out, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for table, reqs := range in.RequestItems {
		if strings.HasSuffix(table, "-sessions") {
			r.batched += int64(len(reqs) - len(out.UnprocessedItems[table]))
		}
	}
	return out, err
}

func (r *sessionRows) batchRows() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.batched
}

func (r *sessionRows) PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	out, err := r.DynamoDBAPI.PutItem(ctx, in, opts...)
	if _, ok := in.Item["session_id"]; ok && err == nil {
		r.mu.Lock()
		r.rows = append(r.rows, in.Item)
		r.mu.Unlock()
	}
	return out, err
}

func (r *sessionRows) all() []map[string]dtypes.AttributeValue {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.rows)
}

// window is the run's span in Unix ms: every generated event's time falls in it (the pre-fill stamps its
// events with the time it starts).
type window struct{ from, to int64 }

func (w window) holds(ms int64) bool { return w.from <= ms && ms <= w.to }

// pocUsers are the ids the pre-fill's POC events carry for n users: "1" to "n".
func pocUsers(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = strconv.Itoa(i + 1)
	}
	return ids
}

// checkLambdaAccess checks the lambda baseline's Redis writes: every user's last access, under the run's
// key prefix (the stream's name), at an event time of the run. 1,000 events over 50 users leave none out.
func checkLambdaAccess(t *testing.T, rdb *redis.Client, stream string, users int, w window) {
	t.Helper()
	ctx := context.Background()
	keys, err := rdb.Keys(ctx, stream+":lambda:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if len(keys) > 0 {
			if err := rdb.Del(context.Background(), keys...).Err(); err != nil {
				t.Logf("delete the lambda baseline's keys: %v", err)
			}
		}
	})
	seen := map[string]bool{}
	for _, k := range keys {
		user := strings.TrimPrefix(k, stream+":lambda:")
		ms, err := rdb.HGet(ctx, k, "last_access_ms").Int64()
		if err != nil || !w.holds(ms) {
			t.Errorf("user %s: last_access_ms %d (%v), want a time of the run, %d to %d", user, ms, err, w.from, w.to)
		}
		seen[user] = true
	}
	for _, u := range pocUsers(users) {
		if !seen[u] {
			t.Errorf("no last access for user %s in Redis (%d users have one)", u, len(seen))
		}
	}
	if len(seen) != users {
		t.Errorf("last access of %d users, want %d", len(seen), users)
	}
}

// checkLambdaSessions checks the lambda baseline's session rows: every user has one (a replay after a
// lease moves may put another), each starting at an event time of the run.
func checkLambdaSessions(t *testing.T, rows []map[string]dtypes.AttributeValue, users int, w window) {
	t.Helper()
	byUser := map[string]int{}
	for _, it := range rows {
		user, id, start := str(it["user_id"]), str(it["session_id"]), str(it["start_ms"])
		ms, err := strconv.ParseInt(start, 10, 64)
		if id == "" || err != nil || !w.holds(ms) {
			t.Errorf("session row %q of user %s: start_ms %q, want a time of the run, %d to %d", id, user, start, w.from, w.to)
		}
		byUser[user]++
	}
	for _, u := range pocUsers(users) {
		if byUser[u] == 0 {
			t.Errorf("no session row for user %s (%d rows for %d users)", u, len(rows), len(byUser))
		}
	}
	if len(byUser) != users {
		t.Errorf("session rows for %d users, want %d: %v", len(byUser), users, byUser)
	}
}

// str is a string or number attribute's text; "" for anything else.
func str(v dtypes.AttributeValue) string {
	switch v := v.(type) {
	case *dtypes.AttributeValueMemberS:
		return v.Value
	case *dtypes.AttributeValueMemberN:
		return v.Value
	}
	return ""
}

// The archive drain stores every record, reads the lake back and fills in its figures.
func TestDrainScenarioArchive(t *testing.T) {
	kin, ddb, rdb, s3c := testenv.Kinesis(t), testenv.DynamoDB(t), testenv.Redis(t), testenv.S3(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := bench.Drain(ctx, kin, ddb, bench.DrainConfig{Shards: 2, Records: 1000, Users: 50, Writers: 2,
		Workers: 2, Processor: "archive", Redis: rdb, S3: s3c, ArchiveBufferBytes: 64 << 10, Progress: func(s string) { t.Log(s) }})
	if err != nil {
		t.Fatal(err)
	}
	a := res.Archive
	if !res.Verified || a == nil || a.RawLines != 1000 || a.ParquetRows != 1000 || a.ParquetVsRaw <= 0 || a.Objects < 4 {
		t.Fatalf("result not filled in: %+v %+v", res, a)
	}
}
