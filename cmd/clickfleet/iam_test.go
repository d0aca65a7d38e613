package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/clickfleet/clickfleet/internal/awscalls"
	"github.com/clickfleet/clickfleet/internal/crashpoint"
	"github.com/clickfleet/clickfleet/internal/testenv"
	"github.com/clickfleet/clickfleet/lease"
)

// iamRun runs the test build of clickfleet with its AWS calls recorded, one log per command.
type iamRun struct {
	t   *testing.T
	bin string
	dir string
	env []string
}

func (r *iamRun) log(command string) string { return filepath.Join(r.dir, command+".calls") }

func (r *iamRun) command(ctx context.Context, record string, extraEnv []string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, r.bin, args...)
	cmd.Env = append(append(append([]string{}, r.env...), extraEnv...), "CLICKFLEET_LOG_FORMAT=json")
	if record != "" {
		cmd.Env = append(cmd.Env, awscalls.Env+"="+r.log(record))
	}
	return cmd
}

// run runs a command to its end; it must succeed.
func (r *iamRun) run(record string, args ...string) string {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := r.command(ctx, record, nil, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		r.t.Fatalf("clickfleet %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out.String()
}

// has reports whether the binary has a command.
func (r *iamRun) has(command string) bool {
	return exec.Command(r.bin, command, "--help").Run() == nil
}

// hasFlag reports whether a command of the binary has a flag.
func (r *iamRun) hasFlag(command, flag string) bool {
	out, err := exec.Command(r.bin, command, "--help").Output()
	return err == nil && bytes.Contains(out, []byte("--"+flag+" "))
}

// proc is a long-running command.
type proc struct {
	cmd  *exec.Cmd
	errb bytes.Buffer
	done chan error
}

func (r *iamRun) start(record string, extraEnv []string, args ...string) *proc {
	r.t.Helper()
	p := &proc{cmd: r.command(context.Background(), record, extraEnv, args...), done: make(chan error, 1)}
	p.cmd.Stdout = &bytes.Buffer{}
	p.cmd.Stderr = &p.errb
	if err := p.cmd.Start(); err != nil {
		r.t.Fatalf("start clickfleet %s: %v", args[0], err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	r.t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("clickfleet %s did not stop cleanly: %v\n%s", p.cmd.Args[1], err, p.errb.String())
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("clickfleet %s did not stop within 2 minutes of SIGTERM", p.cmd.Args[1])
	}
}

// wait waits for the process to end by itself and returns its error.
func (p *proc) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-p.done:
		return err
	case <-time.After(2 * time.Minute):
		t.Fatalf("clickfleet %s did not end within 2 minutes", p.cmd.Args[1])
		return nil
	}
}

func waitHTTP(t *testing.T, url string) {
	t.Helper()
	testenv.WaitFor(t, url+" answers", 2*time.Minute, func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// streamRecords counts the records on every shard of a stream.
func streamRecords(t *testing.T, kin *kinesis.Client, stream string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	shards, err := kin.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		return 0
	}
	n := 0
	for _, s := range shards.Shards {
		it, err := kin.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(stream), ShardId: s.ShardId, ShardIteratorType: ktypes.ShardIteratorTypeTrimHorizon})
		if err != nil {
			return 0
		}
		for iter := it.ShardIterator; iter != nil; {
			out, err := kin.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
			if err != nil {
				return 0
			}
			n += len(out.Records)
			if len(out.Records) == 0 {
				break
			}
			iter = out.NextShardIterator
		}
	}
	return n
}

func objectsUnder(t *testing.T, c *s3.Client, bucket, prefix string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	if err != nil {
		return 0
	}
	return len(out.Contents)
}

// callARNs returns the ARNs of a recorded call's resources, in the made-up account and region the
// template model uses.
func callARNs(c awscalls.Call) []string {
	var out []string
	for _, r := range c.Resources {
		switch r.Kind {
		case awscalls.Stream, awscalls.Consumer:
			out = append(out, fmt.Sprintf("arn:aws:kinesis:%s:%s:stream/%s", fakeRegion, fakeAccount, r.Name))
		case awscalls.Table, awscalls.Index:
			out = append(out, fmt.Sprintf("arn:aws:dynamodb:%s:%s:table/%s", fakeRegion, fakeAccount, r.Name))
		case awscalls.Bucket, awscalls.Object:
			out = append(out, "arn:aws:s3:::"+r.Name)
		}
	}
	return out
}

// iamMatch reports whether an IAM pattern (* and ? wildcards, case-insensitive for actions) matches s.
func iamMatch(pattern, s string, fold bool) bool {
	re := "^" + strings.NewReplacer(`\*`, ".*", `\?`, ".").Replace(regexp.QuoteMeta(pattern)) + "$"
	if fold {
		re = "(?i)" + re
	}
	return regexp.MustCompile(re).MatchString(s)
}

// allowed reports whether the statements allow a call on all its resources.
func allowed(stmts []statement, c awscalls.Call) bool {
	arns := callARNs(c)
	if len(arns) == 0 {
		arns = []string{"*"}
	}
	for _, arn := range arns {
		ok := false
		for _, s := range stmts {
			for _, a := range s.Actions {
				if !iamMatch(a, c.Action, true) {
					continue
				}
				for _, r := range s.Resources {
					if r == "*" || (arn != "*" && iamMatch(r, arn, false)) {
						ok = true
					}
				}
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// notCalledLocally are the actions a role may allow although the local run cannot call them, and why.
var notCalledLocally = map[string]string{
	"cloudwatch:GetMetricData": "scale --source cloudwatch reads AWS/Kinesis IncomingBytes and IncomingRecords; no local CloudWatch speaks the SDK's protocol, so the test runs scale with --source metrics",
}

// checkPolicy fails the test for every recorded call the statements do not allow, and for every action
// on a resource the statements allow that no recorded call used.
func checkPolicy(t *testing.T, who string, stmts []statement, calls []awscalls.Call) {
	t.Helper()
	denied := map[string]bool{}
	for _, c := range calls {
		if len(c.Resources) == 0 && !awsWithoutResources[c.Action] {
			t.Errorf("%s: %s %s names no resource the recorder could read (%+v)", who, c.Service, c.Operation, c)
			continue
		}
		if !allowed(stmts, c) {
			denied[fmt.Sprintf("%s on %s", c.Action, strings.Join(callARNs(c), ", "))] = true
		}
	}
	for _, d := range sortedKeys(denied) {
		t.Errorf("%s calls %s, which its policy does not allow", who, d)
	}
	for _, s := range stmts {
		for _, a := range s.Actions {
			for _, r := range s.Resources {
				used := false
				for _, c := range calls {
					if !iamMatch(a, c.Action, true) {
						continue
					}
					arns := callARNs(c)
					if len(arns) == 0 {
						arns = []string{"*"}
					}
					for _, arn := range arns {
						used = used || r == "*" || iamMatch(r, arn, false)
					}
				}
				if why, ok := notCalledLocally[a]; !used && !ok {
					t.Errorf("%s: statement %s allows %s on %s, which nothing calls", who, s.Sid, a, r)
				} else if !used {
					t.Logf("%s: %s is not called on the local stack: %s", who, a, why)
				}
			}
		}
	}
}

// sessionUser returns the user_id of a sessions item.
func sessionUser(t *testing.T, item map[string]dtypes.AttributeValue) string {
	t.Helper()
	v, ok := item["user_id"].(*dtypes.AttributeValueMemberS)
	if !ok {
		t.Fatalf("session item without a string user_id: %v", item)
	}
	return v.Value
}

func sortedKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Every task role of deploy/aws holds exactly what its command calls: each command runs against the local
// stack with its AWS calls recorded (a test-build middleware, internal/awscalls) through the situations
// that reach every call — records valid, malformed and high-intent, an ingest with an invalid event, an
// archive crash between its PUTs and its checkpoint (the replay HEADs the object), and a reshard (finished
// parents' leases are deleted) — and the test fails when a call is not allowed by the role of the task
// that runs the command, or a role allows an action on a resource no call used. Operator commands (gen,
// tail, sessions, report, reconcile) are checked against the OperatorAccess policy, setup (run as the one-off task,
// with the resources in place) against its task role, reconcile also against the scheduled task's role;
// names-sync makes no AWS call and has no role.
func TestTaskRolesAreTheCallsTheCodeMakes(t *testing.T) {
	kin, ddb, s3c := testenv.Kinesis(t), testenv.DynamoDB(t), testenv.S3(t)
	testenv.Redis(t)
	pgDSN := testenv.PostgresDSN(t)
	base := strings.TrimPrefix(testenv.Name(t, "x"), "x-")
	names := map[string]string{
		"StreamName": "s-" + base, "OffersStreamName": "o-" + base, "ErrorsStreamName": "e-" + base,
		"LeaseTableName": "l-" + base, "ArchiveLeaseTableName": "a-" + base, "SessionsTableName": "t-" + base,
		"ScaleLeaseTableName": "c-" + base,
		"LakeBucketName":      "b-" + base,
	}
	params := withTLS(nil)
	for k, v := range names {
		params[k] = v
	}
	tp := loadTemplate(t, params)
	lakeURL := "s3://" + names["LakeBucketName"] + "/"
	r := &iamRun{t: t, bin: testenv.Binary(t), dir: t.TempDir(), env: os.Environ()}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, s := range []string{"StreamName", "OffersStreamName", "ErrorsStreamName"} {
			_, _ = kin.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String(names[s]), EnforceConsumerDeletion: aws.Bool(true)})
		}
		for _, s := range []string{"LeaseTableName", "ArchiveLeaseTableName", "ScaleLeaseTableName"} {
			_ = lease.DeleteTables(ctx, ddb, names[s])
		}
		_, _ = ddb.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(names["SessionsTableName"])})
		bucket := aws.String(names["LakeBucketName"])
		for p := s3.NewListObjectsV2Paginator(s3c, &s3.ListObjectsV2Input{Bucket: bucket}); p.HasMorePages(); {
			page, err := p.NextPage(ctx)
			if err != nil {
				break
			}
			for _, o := range page.Contents {
				_, _ = s3c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: bucket, Key: o.Key})
			}
		}
		_, _ = s3c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: bucket})
	})
	stream := names["StreamName"]
	setupArgs := []string{"setup", "--stream", stream, "--offers-stream", names["OffersStreamName"], "--errors-stream", names["ErrorsStreamName"],
		"--lease-table", names["LeaseTableName"], "--archive-lease-table", names["ArchiveLeaseTableName"], "--sessions-table", names["SessionsTableName"],
		"--lake-url", lakeURL, "--shards", "2", "--pg-dsn", pgDSN}
	if r.hasFlag("setup", "scale-lease-table") {
		setupArgs = append(setupArgs, "--scale-lease-table", names["ScaleLeaseTableName"])
	}
	r.run("", setupArgs...)      // what CloudFormation creates on AWS
	r.run("setup", setupArgs...) // the one-off setup task, with the resources in place

	r.run("gen", "gen", "--stream", stream, "--count", "400", "--time-scale", "0", "--users", "20")
	ctx := context.Background()
	// A malformed record on each shard (the lowest and the highest hash key), so that the archive's first
	// objects of every shard are raw, events and errors, and the crash below replays all three kinds.
	for _, hashKey := range []string{"0", "340282366920938463463374607431768211455"} {
		if _, err := kin.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String(stream), PartitionKey: aws.String("bad"),
			ExplicitHashKey: aws.String(hashKey), Data: []byte("not an event")}); err != nil {
			t.Fatal(err)
		}
	}

	// ingest: valid events, an invalid one to the errors stream, the readiness probe.
	port := testenv.FreePort(t)
	ingest := r.start("ingest", nil, "ingest", "--listen", "127.0.0.1:"+port, "--stream", stream, "--errors-stream", names["ErrorsStreamName"],
		"--api-keys", "iam-test-key-1", "--invalid-to-errors")
	url := "http://127.0.0.1:" + port
	waitHTTP(t, url+"/readyz")
	r.run("gen-to-ingest", "gen", "--target", url, "--api-key", "iam-test-key-1", "--count", "50", "--time-scale", "0")
	req, _ := http.NewRequest(http.MethodPost, url+"/v1/events", strings.NewReader(`{"user_id":"u-bad","event_name":""}`))
	req.Header.Set("x-api-key", "iam-test-key-1")
	req.Header.Set("content-type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("ingest answered an invalid event with %s, want 202 (--invalid-to-errors)", resp.Status)
	}
	ingest.stop(t)

	// consume and archive: through a crash after the archive's PUTs and a reshard.
	// Redis keys under a prefix of this test's own, so that other tests sharing the server never see them.
	fast := []string{"--shard-sync-interval", "1s", "--parent-poll-interval", "1s", "--failover-time", "3s", "--emf-interval", "1s", "--key-prefix", base + ":"}
	consumeAddr := "127.0.0.1:" + testenv.FreePort(t)
	consumeURL := "http://" + consumeAddr
	consume := r.start("consume", nil, append([]string{"consume", "--stream", stream, "--lease-table", names["LeaseTableName"],
		"--sessions-table", names["SessionsTableName"], "--offers-stream", names["OffersStreamName"], "--errors-stream", names["ErrorsStreamName"],
		"--http-listen", consumeAddr}, fast...)...)
	archiveArgs := append([]string{"archive", "--stream", stream, "--lease-table", names["ArchiveLeaseTableName"], "--lake-url", lakeURL,
		"--buffer-interval", "1s", "--buffer-interval-unchecked", "--http-listen", ""}, fast...)
	crashed := r.start("archive", []string{crashpoint.Env + "=" + crashpoint.AfterPut + ":1"}, archiveArgs...)
	if err := crashed.wait(t); err == nil {
		t.Fatal("the archive did not crash at its crash point")
	}
	archive := r.start("archive", nil, archiveArgs...)
	testenv.WaitFor(t, "offers, errors, sessions and lake objects", 3*time.Minute, func() bool {
		sessions, err := ddb.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(names["SessionsTableName"]), Limit: aws.Int32(1)})
		return err == nil && len(sessions.Items) > 0 &&
			streamRecords(t, kin, names["OffersStreamName"]) > 0 && streamRecords(t, kin, names["ErrorsStreamName"]) > 2 &&
			objectsUnder(t, s3c, names["LakeBucketName"], "raw/") > 0 && objectsUnder(t, s3c, names["LakeBucketName"], "events/") > 0 &&
			objectsUnder(t, s3c, names["LakeBucketName"], "errors/") > 0
	})
	// The reshard 2 → 4: clickfleet scale makes it (its minimum is 4), reading the rate from consume.
	hasScale, hasDashboard := r.has("scale"), r.has("dashboard")
	var scaler *proc
	if hasScale {
		scaler = r.start("scale", nil, "scale", "--stream", stream, "--lease-table", names["ScaleLeaseTableName"], "--source", "metrics",
			"--workers", consumeURL, "--min-shards", "4", "--max-shards", "4", "--scale-interval", "1s", "--http-listen", "")
	} else if _, err := kin.UpdateShardCount(ctx, &kinesis.UpdateShardCountInput{StreamName: aws.String(stream), TargetShardCount: aws.Int32(4), ScalingType: ktypes.ScalingTypeUniformScaling}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the stream to be active with 4 open shards", 2*time.Minute, func() bool {
		out, err := kin.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
		return err == nil && out.StreamDescriptionSummary.StreamStatus == ktypes.StreamStatusActive && aws.ToInt32(out.StreamDescriptionSummary.OpenShardCount) == 4
	})
	if scaler != nil {
		scaler.stop(t)
	}
	r.run("gen", "gen", "--stream", stream, "--count", "400", "--time-scale", "0", "--users", "20", "--seed", "2")
	for _, table := range []string{names["LeaseTableName"], names["ArchiveLeaseTableName"]} {
		testenv.WaitFor(t, "the finished parents' leases to be deleted from "+table, 3*time.Minute, func() bool {
			out, err := ddb.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(table)})
			return err == nil && len(out.Items) == 4
		})
	}
	if hasDashboard {
		// The dashboard: its charts (the lake's events), its fleet panel (both lease tables, the workers) and
		// the last reconciliation (the lake's reconcile/latest.json, absent here).
		addr := "127.0.0.1:" + testenv.FreePort(t)
		const token = "iam-test-dashboard-token"
		dash := r.start("dashboard", nil, "dashboard", "--listen", addr, "--token", token, "--workers", consumeURL,
			"--lease-table", names["LeaseTableName"], "--archive-lease-table", names["ArchiveLeaseTableName"], "--lake-url", lakeURL,
			"--cache-dir", t.TempDir())
		waitHTTP(t, "http://"+addr+"/healthz")
		for _, path := range []string{"/api/fleet", "/api/event_ratio", "/api/reconcile"} {
			req, _ := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("dashboard %s: %s", path, resp.Status)
			}
		}
		dash.stop(t)
	}
	consume.stop(t)
	archive.stop(t)
	runEFO(t, r, setupArgs, names, fast)

	// names-sync: PostgreSQL to Redis, no AWS.
	sync := r.start("names-sync", nil, "names-sync", "--pg-dsn", pgDSN, "--http-listen", "127.0.0.1:"+port, "--key-prefix", base+":")
	waitHTTP(t, "http://127.0.0.1:"+port+"/readyz")
	sync.stop(t)

	// Operator commands.
	r.run("tail", "tail", "--stream", stream, "--max", "5", "--timeout", "60s")
	scan, err := ddb.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(names["SessionsTableName"]), Limit: aws.Int32(1)})
	if err != nil || len(scan.Items) == 0 {
		t.Fatalf("no session to look up: %v", err)
	}
	r.run("sessions", "sessions", "--sessions-table", names["SessionsTableName"], "--limit", "5")
	r.run("sessions", "sessions", "--sessions-table", names["SessionsTableName"], "--user", sessionUser(t, scan.Items[0]))
	r.run("report", "report", "events_by_country", "--lake-url", lakeURL, "--cache-dir", t.TempDir(), "--format", "csv")
	// reconcile exits 1 when the sides differ, which is not this test's business: its calls are.
	if err := r.command(ctx, "reconcile", nil, "reconcile", "--sessions-table", names["SessionsTableName"], "--lake-url", lakeURL,
		"--cache-dir", t.TempDir()).Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
			t.Fatalf("clickfleet reconcile: %v", err)
		}
	}

	// The checks.
	read := func(command string) []awscalls.Call {
		calls, err := awscalls.Read(r.log(command))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		return calls
	}
	roles := map[string]string{}
	for _, c := range tp.containers(t) {
		roles[c.Command[0]] = c.TaskRole
	}
	for _, command := range []string{"setup", "ingest", "consume", "archive"} {
		t.Run(command, func(t *testing.T) {
			calls := read(command)
			if len(calls) == 0 {
				t.Fatalf("clickfleet %s made no AWS call the recorder saw", command)
			}
			role := roles[command]
			if role == "" {
				t.Fatalf("the task running clickfleet %s has no task role", command)
			}
			stmts, awsManaged := tp.roleStatements(t, role)
			if len(awsManaged) > 0 {
				t.Errorf("%s has AWS-managed policies %v", role, awsManaged)
			}
			checkPolicy(t, role, stmts, calls)
		})
	}
	// ReadMode efo: the roles of the template made with it allow what consume and archive call in either
	// read mode, and nothing more; the polling roles above hold none of the fan-out calls.
	efoParams := map[string]string{"ReadMode": "efo"}
	for k, v := range params {
		efoParams[k] = v
	}
	tpEFO := loadTemplate(t, efoParams)
	for _, command := range []string{"consume", "archive"} {
		t.Run(command+"/efo", func(t *testing.T) {
			efo := read(command + "-efo")
			if len(efo) == 0 {
				t.Fatalf("clickfleet %s --read-mode efo made no AWS call the recorder saw", command)
			}
			stmts, _ := tpEFO.roleStatements(t, roles[command])
			checkPolicy(t, roles[command]+" (ReadMode efo)", stmts, append(read(command), efo...))
		})
	}
	for _, command := range []string{"scale", "dashboard", "reconcile"} {
		t.Run(command, func(t *testing.T) {
			if !r.has(command) {
				t.Fatalf("clickfleet %s is not in this build: its role in deploy/aws is unchecked", command)
			}
			role := roles[command]
			if role == "" {
				t.Fatalf("the task running clickfleet %s has no task role", command)
			}
			stmts, _ := tp.roleStatements(t, role)
			checkPolicy(t, role, stmts, read(command))
		})
	}
	t.Run("names-sync", func(t *testing.T) {
		if calls := read("names-sync"); len(calls) > 0 {
			t.Errorf("names-sync made AWS calls %+v; give its task a role", calls)
		}
		if roles["names-sync"] != "" {
			t.Errorf("names-sync calls no AWS API but its task has the role %s", roles["names-sync"])
		}
	})
	t.Run("operator", func(t *testing.T) {
		var calls []awscalls.Call
		for _, command := range []string{"gen", "gen-to-ingest", "tail", "sessions", "report", "reconcile"} {
			calls = append(calls, read(command)...)
		}
		checkPolicy(t, "OperatorAccess", tp.policyStatements(t, "OperatorAccess"), calls)
	})
}

// runEFO runs consume and archive once more with --read-mode efo (their AWS calls recorded as
// consume-efo and archive-efo) until each has subscribed to the shards through its stream consumer,
// which setup --read-mode efo registers first, unrecorded, as CloudFormation does with ReadMode efo.
func runEFO(t *testing.T, r *iamRun, setupArgs []string, names map[string]string, fast []string) {
	t.Helper()
	testenv.KinesisFanOut(t) // the stack's fan-out proxy, named by CLICKFLEET_EFO_ENDPOINT
	r.run("", append(append([]string{}, setupArgs...), "--read-mode", "efo")...)
	stream := names["StreamName"]
	consume := r.start("consume-efo", nil, append([]string{"consume", "--read-mode", "efo", "--stream", stream, "--lease-table", names["LeaseTableName"],
		"--sessions-table", names["SessionsTableName"], "--offers-stream", names["OffersStreamName"], "--errors-stream", names["ErrorsStreamName"],
		"--http-listen", "127.0.0.1:" + testenv.FreePort(t)}, fast...)...)
	archive := r.start("archive-efo", nil, append([]string{"archive", "--read-mode", "efo", "--stream", stream, "--lease-table", names["ArchiveLeaseTableName"],
		"--lake-url", "s3://" + names["LakeBucketName"] + "/", "--buffer-interval", "1s", "--buffer-interval-unchecked", "--http-listen", ""}, fast...)...)
	r.run("gen", "gen", "--stream", stream, "--count", "100", "--time-scale", "0", "--users", "10", "--seed", "3")
	for _, app := range []string{names["LeaseTableName"], names["ArchiveLeaseTableName"]} {
		testenv.WaitFor(t, "subscriptions through the stream consumer "+app, 2*time.Minute, func() bool {
			opened, _ := testenv.Subscriptions(t, app)
			return opened > 0
		})
	}
	consume.stop(t)
	archive.stop(t)
}
