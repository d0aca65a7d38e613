package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/clickfleet/clickfleet/internal/provision"
	"github.com/clickfleet/clickfleet/lake"
	"github.com/clickfleet/clickfleet/lease"
)

// The template's variants: each Compute, with and without the dashboard (it needs a certificate).
var templateVariants = []struct {
	name   string
	params map[string]string
}{
	{"fargate", map[string]string{}},
	{"fargate+dashboard", map[string]string{"CertificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/x", "DashboardDomainName": "dash.example.com"}},
	{"ec2", map[string]string{"Compute": "ec2", "CertificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/x", "DashboardDomainName": "dash.example.com"}},
	{"ec2-systemd", map[string]string{"Compute": "ec2-systemd", "BinaryUrl": "s3://builds/clickfleet/v1/clickfleet"}},
}

// cliCommand finds a clickfleet command line in a fresh command tree and parses its flags; it fails the
// test when the command or a flag does not exist.
func cliCommand(t *testing.T, args []string) *cobra.Command {
	t.Helper()
	root := newRootCommand()
	cmd, rest, err := root.Find(args)
	if err != nil || cmd == root {
		t.Fatalf("%q is not a clickfleet command (%v)", args, err)
	}
	if err := cmd.ParseFlags(rest); err != nil {
		t.Fatalf("%q: %v", args, err)
	}
	if len(cmd.Flags().Args()) > 0 && cmd.Args != nil {
		if err := cmd.Args(cmd, cmd.Flags().Args()); err != nil {
			t.Fatalf("%q: %v", args, err)
		}
	}
	return cmd
}

// applySettings sets each CLICKFLEET_* variable's flag of cmd to its value, failing the test when the
// variable is no setting of the command or the value does not parse.
func applySettings(t *testing.T, cmd *cobra.Command, env map[string]string) {
	t.Helper()
	byEnv := map[string]*pflag.Flag{}
	visit := func(f *pflag.Flag) { byEnv[envName(f.Name)] = f }
	cmd.LocalFlags().VisitAll(visit)
	cmd.InheritedFlags().VisitAll(visit)
	for k, v := range env {
		if !strings.HasPrefix(k, "CLICKFLEET_") {
			continue
		}
		f, ok := byEnv[k]
		if !ok {
			t.Errorf("%s is not a setting of 'clickfleet %s'", k, cmd.Name())
			continue
		}
		if strings.HasPrefix(v, "fake:") || strings.HasPrefix(v, "arn:") { // a secret or an unknown attribute
			continue
		}
		if err := f.Value.Set(v); err != nil {
			t.Errorf("%s=%q (--%s of 'clickfleet %s'): %v", k, v, f.Name, cmd.Name(), err)
		}
	}
}

// duration returns a duration flag's value after the settings were applied.
func durationFlag(t *testing.T, cmd *cobra.Command, name string) (time.Duration, bool) {
	t.Helper()
	f := cmd.Flags().Lookup(name)
	if f == nil {
		return 0, false
	}
	d, err := time.ParseDuration(f.Value.String())
	if err != nil {
		t.Fatalf("--%s of %s: %v", name, cmd.Name(), err)
	}
	return d, true
}

// Every container runs a clickfleet command with flags and CLICKFLEET_* variables that command has, its
// health check is clickfleet's on the port it listens on, and it logs JSON.
func TestTemplateContainersMatchTheCLI(t *testing.T) {
	for _, v := range templateVariants {
		t.Run(v.name, func(t *testing.T) {
			tp := loadTemplate(t, v.params)
			seen := map[string]bool{}
			for _, c := range tp.containers(t) {
				t.Run(c.TaskDefinition, func(t *testing.T) {
					cmd := cliCommand(t, c.Command)
					seen[cmd.Name()] = true
					env := map[string]string{}
					for k, v := range c.Environment {
						env[k] = v
					}
					for k, v := range c.Secrets {
						if !strings.HasPrefix(k, "CLICKFLEET_") && k != "PGPASSWORD" {
							t.Errorf("secret %s is neither a setting nor PostgreSQL's password variable", k)
						}
						env[k] = v
					}
					applySettings(t, cmd, env)
					if got := cmd.Flag("log-format").Value.String(); got != "json" {
						t.Errorf("--log-format is %q, want json (CloudWatch Logs)", got)
					}
					if c.Port == 0 {
						return
					}
					listen := ""
					for _, name := range []string{"http-listen", "listen"} {
						if f := cmd.Flags().Lookup(name); f != nil && listen == "" {
							listen = f.Value.String()
						}
					}
					host, port, err := net.SplitHostPort(listen)
					if err != nil || port != strconv.Itoa(c.Port) || host != "0.0.0.0" {
						t.Errorf("listens on %q, want 0.0.0.0:%d (its port mapping)", listen, c.Port)
					}
					if len(c.HealthCheck) < 3 || c.HealthCheck[0] != "CMD" || c.HealthCheck[1] != "/usr/local/bin/clickfleet" {
						t.Fatalf("health check %q is not the image's clickfleet (distroless: no shell, no curl)", c.HealthCheck)
					}
					hc := cliCommand(t, c.HealthCheck[2:])
					if want := fmt.Sprintf("http://127.0.0.1:%d/healthz", c.Port); hc.Flag("url").Value.String() != want {
						t.Errorf("health check URL %s, want %s", hc.Flag("url").Value, want)
					}
				})
			}
			want := []string{"ingest", "names-sync", "scale", "setup"}
			if v.params["Compute"] != "ec2-systemd" {
				want = append(want, "consume", "archive")
			}
			if v.params["DashboardDomainName"] != "" {
				want = append(want, "dashboard")
			}
			for _, name := range want {
				if !seen[name] {
					t.Errorf("no container runs clickfleet %s", name)
				}
			}
		})
	}
}

// shutdownBudget is how long a command may take to stop cleanly after SIGTERM: its --shutdown-timeout plus
// its last flush (--flush-interval, where it has one) plus a margin for releasing the leases.
func shutdownBudget(t *testing.T, cmd *cobra.Command) time.Duration {
	const margin = 10 * time.Second
	d, _ := durationFlag(t, cmd, "shutdown-timeout")
	flush, _ := durationFlag(t, cmd, "flush-interval")
	return d + flush + margin
}

// Fargate stops a container at most 120 s after SIGTERM; the stop timeout must cover the command's clean stop.
func TestTemplateStopTimeouts(t *testing.T) {
	for _, v := range templateVariants {
		tp := loadTemplate(t, v.params)
		for _, c := range tp.containers(t) {
			t.Run(v.name+"/"+c.TaskDefinition, func(t *testing.T) {
				cmd := cliCommand(t, c.Command)
				applySettings(t, cmd, c.Environment)
				budget := shutdownBudget(t, cmd)
				stop := time.Duration(c.StopTimeout) * time.Second
				if stop > 120*time.Second {
					t.Errorf("StopTimeout %s is above Fargate's 120 s", stop)
				}
				if stop < budget {
					t.Errorf("StopTimeout %s is below --shutdown-timeout + flush + 10 s = %s", stop, budget)
				}
			})
		}
	}
}

// consume and archive scale between 1 and the shard-count maximum on the lag the workers emit: out above
// 60 s, in below 5 s for 15 minutes, with a CPU target that never scales in.
func TestTemplateWorkerScaling(t *testing.T) {
	for _, v := range templateVariants {
		t.Run(v.name, func(t *testing.T) {
			tp := loadTemplate(t, v.params)
			maxShards := paramMaxValue(t, tp, "MaxShardCount")
			targets := map[string]string{} // scalable target → service
			for _, st := range tp.resourcesOfType("AWS::ApplicationAutoScaling::ScalableTarget") {
				p := tp.props(t, st)
				svc := strings.TrimPrefix(fmt.Sprint(p["ResourceId"]), "service/Cluster/")
				targets[st] = svc
				max, _ := strconv.Atoi(fmt.Sprint(p["MaxCapacity"]))
				if svc == "fake:IngestService.Name" {
					continue
				}
				if max > maxShards || fmt.Sprint(p["MaxCapacity"]) != tp.params["MaxShardCount"] || fmt.Sprint(p["MinCapacity"]) != "1" {
					t.Errorf("%s: capacity %v..%v, want 1..MaxShardCount (%s, at most %d)", st, p["MinCapacity"], p["MaxCapacity"], tp.params["MaxShardCount"], maxShards)
				}
			}
			if asg := "AutoScalingGroup"; tp.exists(asg) && paramMaxValue(t, tp, "InstanceMaxSize") > maxShards {
				t.Errorf("InstanceMaxSize's MaxValue %d is above MaxShardCount's %d", paramMaxValue(t, tp, "InstanceMaxSize"), maxShards)
			}
			workers := []string{"ConsumeScalableTarget", "ArchiveScalableTarget"}
			if v.params["Compute"] == "ec2-systemd" {
				if len(targets) != 1 {
					t.Errorf("ec2-systemd: scalable targets %v, want the ingest's only", targets)
				}
				workers = nil
				checkLagAlarms(t, tp, "WorkerInstancesScaleOut", "WorkerInstancesScaleIn")
			}
			for _, st := range workers {
				if _, ok := targets[st]; !ok {
					t.Fatalf("no %s", st)
				}
				prefix := strings.TrimSuffix(st, "ScalableTarget")
				checkLagAlarms(t, tp, prefix+"ScaleOut", prefix+"ScaleIn")
				cpu := tp.props(t, prefix+"CpuTarget")
				cfg := cpu["TargetTrackingScalingPolicyConfiguration"].(map[string]any)
				if cfg["DisableScaleIn"] != "true" || fmt.Sprint(cpu["ScalingTargetId"]) != st {
					t.Errorf("%sCpuTarget: %v; want a CPU target on %s that never scales in", prefix, cpu, st)
				}
			}
			// clickfleet scale resizes the stream up to the same maximum.
			for _, c := range tp.containers(t) {
				if c.Command[0] == "scale" && c.Environment["CLICKFLEET_MAX_SHARDS"] != tp.params["MaxShardCount"] {
					t.Errorf("scale's CLICKFLEET_MAX_SHARDS %q, want MaxShardCount %s", c.Environment["CLICKFLEET_MAX_SHARDS"], tp.params["MaxShardCount"])
				}
			}
		})
	}
}

func paramMaxValue(t *testing.T, tp *template, name string) int {
	t.Helper()
	p := tp.raw["Parameters"].(map[string]any)[name].(map[string]any)
	n, err := strconv.Atoi(fmt.Sprint(p["MaxValue"]))
	if err != nil {
		t.Fatalf("parameter %s has no MaxValue", name)
	}
	return n
}

// checkLagAlarms finds the alarms whose actions are the scale-out and scale-in policies and checks their
// thresholds: above 60 s for at least a minute out, below 5 s for 15 minutes in, on the lag metric.
func checkLagAlarms(t *testing.T, tp *template, out, in string) {
	t.Helper()
	found := map[string]bool{}
	for _, a := range tp.resourcesOfType("AWS::CloudWatch::Alarm") {
		p := tp.props(t, a)
		actions := asStrings(p["AlarmActions"])
		for _, policy := range []string{out, in} {
			if !slices.Contains(actions, policy) {
				continue
			}
			found[policy] = true
			metrics := alarmMetrics(p)
			lag := false
			for _, m := range metrics {
				lag = lag || (m.Namespace == emfNamespace && m.Name == emfMetricLag)
			}
			if !lag {
				t.Errorf("%s (→ %s) does not watch %s/%s", a, policy, emfNamespace, emfMetricLag)
			}
			period := 60
			if len(metrics) > 0 && metrics[0].Period > 0 {
				period = metrics[0].Period
			}
			evals, _ := strconv.Atoi(fmt.Sprint(p["EvaluationPeriods"]))
			thr, op := fmt.Sprint(p["Threshold"]), fmt.Sprint(p["ComparisonOperator"])
			if policy == out && (thr != "60000" || op != "GreaterThanThreshold" || evals*period < 60) {
				t.Errorf("%s: %s %s for %d×%ds, want above 60000 ms", a, op, thr, evals, period)
			}
			if policy == in && (thr != "5000" || op != "LessThanThreshold" || evals*period != 900) {
				t.Errorf("%s: %s %s for %d×%ds, want below 5000 ms for 15 minutes", a, op, thr, evals, period)
			}
		}
	}
	for _, policy := range []string{out, in} {
		if !found[policy] {
			t.Errorf("no alarm triggers %s", policy)
		}
	}
}

// alarmMetric is one metric an alarm reads.
type alarmMetric struct {
	Namespace, Name string
	Dimensions      map[string]string
	Period          int
}

func alarmMetrics(p map[string]any) []alarmMetric {
	dims := func(v any) map[string]string {
		out := map[string]string{}
		for _, d := range asSlice(v) {
			m := d.(map[string]any)
			out[fmt.Sprint(m["Name"])] = fmt.Sprint(m["Value"])
		}
		return out
	}
	if name, ok := p["MetricName"]; ok {
		period, _ := strconv.Atoi(fmt.Sprint(p["Period"]))
		return []alarmMetric{{Namespace: fmt.Sprint(p["Namespace"]), Name: fmt.Sprint(name), Dimensions: dims(p["Dimensions"]), Period: period}}
	}
	var out []alarmMetric
	for _, q := range asSlice(p["Metrics"]) {
		ms, ok := q.(map[string]any)["MetricStat"].(map[string]any)
		if !ok {
			continue
		}
		m := ms["Metric"].(map[string]any)
		period, _ := strconv.Atoi(fmt.Sprint(ms["Period"]))
		out = append(out, alarmMetric{Namespace: fmt.Sprint(m["Namespace"]), Name: fmt.Sprint(m["MetricName"]), Dimensions: dims(m["Dimensions"]), Period: period})
	}
	return out
}

// The alarms on clickfleet's own metrics use the names and dimensions the workers emit (emf.go), with the
// stream and the lease table (the application) the workers run with; the worker's EMF interval is no
// longer than the alarms' period; the required alarms exist.
func TestTemplateAlarmsUseTheWorkersMetrics(t *testing.T) {
	known := map[string]bool{emfMetricLag: true, emfMetricRecords: true, emfMetricLeases: true}
	for _, v := range templateVariants {
		t.Run(v.name, func(t *testing.T) {
			tp := loadTemplate(t, v.params)
			apps := map[string]bool{}
			for _, c := range tp.containers(t) {
				if c.Command[0] == "consume" || c.Command[0] == "archive" {
					cmd := cliCommand(t, c.Command)
					applySettings(t, cmd, c.Environment)
					apps[cmd.Flag("lease-table").Value.String()] = true
					if d, _ := durationFlag(t, cmd, "emf-interval"); d <= 0 || d > time.Minute {
						t.Errorf("%s: --emf-interval %s, want 1s..60s (the alarms' period)", c.TaskDefinition, d)
					}
				}
			}
			if v.params["Compute"] == "ec2-systemd" {
				apps[tp.params["LeaseTableName"]], apps[tp.params["ArchiveLeaseTableName"]] = true, true
			}
			var lagAlarms, kinesisAlarms, runningAlarms int
			for _, a := range tp.resourcesOfType("AWS::CloudWatch::Alarm") {
				p := tp.props(t, a)
				for _, m := range alarmMetrics(p) {
					switch m.Namespace {
					case emfNamespace:
						if !known[m.Name] {
							t.Errorf("%s: metric %s is not one the workers emit", a, m.Name)
						}
						if len(m.Dimensions) != 2 || m.Dimensions[emfDimStream] != tp.params["StreamName"] || !apps[m.Dimensions[emfDimApplication]] {
							t.Errorf("%s: dimensions %v, want %s=%s and %s=one of %v", a, m.Dimensions, emfDimStream, tp.params["StreamName"], emfDimApplication, apps)
						}
						if m.Name == emfMetricLag && fmt.Sprint(p["Threshold"]) == "300000" && fmt.Sprint(p["ComparisonOperator"]) == "GreaterThanThreshold" {
							lagAlarms++
						}
					case "AWS/Kinesis":
						if !strings.HasSuffix(m.Name, "ProvisionedThroughputExceeded") {
							t.Errorf("%s: unexpected Kinesis metric %s", a, m.Name)
						}
						kinesisAlarms++
					case "ECS/ContainerInsights":
						if m.Name == "RunningTaskCount" {
							runningAlarms++
						}
					}
				}
			}
			services := len(tp.resourcesOfType("AWS::ECS::Service"))
			if lagAlarms != 2 || kinesisAlarms != 2 || runningAlarms != services {
				t.Errorf("alarms: %d lag > 5 min (want consume's and archive's), %d throughput exceeded (want write and read), %d running < desired (want one per service: %d)",
					lagAlarms, kinesisAlarms, runningAlarms, services)
			}
		})
	}
}

// The Glue tables are what `clickfleet catalog --format glue` emits for the stack's bucket.
func TestTemplateGlueTablesAreTheCatalog(t *testing.T) {
	tp := loadTemplate(t, map[string]string{"LakeBucketName": "lake-under-test"})
	c := lake.Catalog{Location: "s3://lake-under-test/", Database: tp.params["GlueDatabaseName"]}
	got := map[string]any{}
	for _, name := range tp.resourcesOfType("AWS::Glue::Table") {
		p := tp.props(t, name)
		if p["DatabaseName"] != "GlueDatabase" {
			t.Errorf("%s is not in the stack's database", name)
		}
		in := p["TableInput"].(map[string]any)
		got[fmt.Sprint(in["Name"])] = in
	}
	if len(got) != len(lake.Tables) {
		t.Errorf("the template has tables %v, the catalog %d", keys(got), len(lake.Tables))
	}
	for _, table := range lake.Tables {
		b, err := json.Marshal(c.GlueTable(table))
		if err != nil {
			t.Fatal(err)
		}
		var want any
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatal(err)
		}
		if g := normalise(got[table.Name]); !reflect.DeepEqual(g, normalise(want)) {
			gb, _ := json.MarshalIndent(g, "", " ")
			wb, _ := json.MarshalIndent(normalise(want), "", " ")
			t.Errorf("table %s differs from the catalog's (regenerate it from clickfleet catalog --format glue):\ntemplate: %s\ncatalog:  %s", table.Name, gb, wb)
		}
	}
}

// normalise makes scalars strings, so YAML's and JSON's scalars compare.
func normalise(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			out[k] = normalise(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalise(e)
		}
		return out
	case nil:
		return nil
	}
	return fmt.Sprint(v)
}

func anyMap[V any](m map[string]V) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// The Athena named queries are lake/report/sql's files, every one of them, unchanged.
func TestTemplateNamedQueriesAreTheReportSQL(t *testing.T) {
	tp := loadTemplate(t, nil)
	files, err := filepath.Glob("../../lake/report/sql/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("no report SQL: %v", err)
	}
	queries := map[string]string{}
	for _, name := range tp.resourcesOfType("AWS::Athena::NamedQuery") {
		p := tp.props(t, name)
		queries[fmt.Sprint(p["Name"])] = fmt.Sprint(p["QueryString"])
		if p["WorkGroup"] != "AthenaWorkGroup" || p["Database"] != "GlueDatabase" {
			t.Errorf("%s is not in the stack's work group and database", name)
		}
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(filepath.Base(f), ".sql")
		q, ok := queries[name]
		if !ok {
			t.Errorf("no named query %s", name)
			continue
		}
		if strings.TrimSpace(q) != strings.TrimSpace(string(b)) {
			t.Errorf("named query %s differs from %s:\n%s", name, f, q)
		}
		delete(queries, name)
	}
	for name := range queries {
		t.Errorf("named query %s has no file in lake/report/sql", name)
	}
}

// captureTables is a DynamoDB API that records the CreateTable inputs and describes the tables it
// recorded as ACTIVE (with their indexes), the others as missing.
type captureTables struct {
	lease.DynamoDBAPI // nil: only CreateTable and DescribeTable are called
	created           []*dynamodb.CreateTableInput
}

func (c *captureTables) CreateTable(_ context.Context, in *dynamodb.CreateTableInput, _ ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error) {
	c.created = append(c.created, in)
	return &dynamodb.CreateTableOutput{}, nil
}

func (c *captureTables) DescribeTable(_ context.Context, in *dynamodb.DescribeTableInput, _ ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error) {
	for _, t := range c.created {
		if *t.TableName != *in.TableName {
			continue
		}
		desc := &dtypes.TableDescription{TableName: t.TableName, TableStatus: dtypes.TableStatusActive, KeySchema: t.KeySchema}
		for _, g := range t.GlobalSecondaryIndexes {
			desc.GlobalSecondaryIndexes = append(desc.GlobalSecondaryIndexes, dtypes.GlobalSecondaryIndexDescription{
				IndexName: g.IndexName, KeySchema: g.KeySchema, Projection: g.Projection, IndexStatus: dtypes.IndexStatusActive})
		}
		return &dynamodb.DescribeTableOutput{Table: desc}, nil
	}
	return nil, &dtypes.ResourceNotFoundException{}
}

// The DynamoDB tables have the schemas clickfleet setup creates (keys, attribute types, the sessions
// index) and bill on demand.
func TestTemplateTablesAreSetups(t *testing.T) {
	tp := loadTemplate(t, nil)
	var capture captureTables
	ctx := context.Background()
	for _, p := range []string{"LeaseTableName", "ArchiveLeaseTableName", "ScaleLeaseTableName"} {
		if err := lease.EnsureTable(ctx, &capture, tp.params[p]); err != nil {
			t.Fatalf("lease tables of %s: %v", tp.params[p], err)
		}
	}
	if _, err := provision.EnsureSessionsTable(ctx, &capture, tp.params["SessionsTableName"]); err != nil {
		t.Fatal(err)
	}
	if len(capture.created) != 10 { // three per lease table, the sessions table
		t.Fatalf("captured %d CreateTable calls, want 10", len(capture.created))
	}
	byName := map[string]map[string]any{}
	for _, name := range tp.resourcesOfType("AWS::DynamoDB::Table") {
		p := tp.props(t, name)
		byName[fmt.Sprint(p["TableName"])] = p
	}
	if len(byName) != len(capture.created) {
		t.Errorf("the template has tables %v, setup creates %d", keys(anyMap(byName)), len(capture.created))
	}
	for _, in := range capture.created {
		name := *in.TableName
		p, ok := byName[name]
		if !ok {
			t.Errorf("setup creates table %s; the template has none", name)
			continue
		}
		if p["BillingMode"] != "PAY_PER_REQUEST" || string(in.BillingMode) != "PAY_PER_REQUEST" {
			t.Errorf("%s: billing %v, want on demand", name, p["BillingMode"])
		}
		want := map[string]any{"AttributeDefinitions": []any{}, "KeySchema": []any{}}
		for _, a := range in.AttributeDefinitions {
			want["AttributeDefinitions"] = append(want["AttributeDefinitions"].([]any), map[string]any{"AttributeName": *a.AttributeName, "AttributeType": string(a.AttributeType)})
		}
		for _, k := range in.KeySchema {
			want["KeySchema"] = append(want["KeySchema"].([]any), map[string]any{"AttributeName": *k.AttributeName, "KeyType": string(k.KeyType)})
		}
		for _, g := range in.GlobalSecondaryIndexes {
			idx := map[string]any{"IndexName": *g.IndexName, "Projection": map[string]any{"ProjectionType": string(g.Projection.ProjectionType)}, "KeySchema": []any{}}
			for _, k := range g.KeySchema {
				idx["KeySchema"] = append(idx["KeySchema"].([]any), map[string]any{"AttributeName": *k.AttributeName, "KeyType": string(k.KeyType)})
			}
			want["GlobalSecondaryIndexes"] = append(asSlice(want["GlobalSecondaryIndexes"]), idx)
		}
		got := map[string]any{}
		for k := range want {
			got[k] = p[k]
		}
		if !reflect.DeepEqual(normalise(got), normalise(want)) {
			t.Errorf("table %s: template %v, setup %v", name, got, want)
		}
	}
}

// awsWithoutResources are the actions that have no resource-level permissions: only "*" works for them.
var awsWithoutResources = map[string]bool{"cloudwatch:GetMetricData": true, "cloudwatch:GetMetricStatistics": true, "kinesis:ListStreams": true}

// No task policy uses a wildcard action, or a wildcard resource where the name is known: "*" only for
// actions without resource-level permissions, and "*" inside an ARN only in an S3 object key.
func TestTemplatePoliciesNameTheirResources(t *testing.T) {
	tp := loadTemplate(t, templateVariants[1].params)
	for _, name := range tp.resourcesOfType("AWS::IAM::ManagedPolicy") {
		for _, s := range tp.policyStatements(t, name) {
			for _, a := range s.Actions {
				if strings.ContainsAny(a, "*?") {
					t.Errorf("%s/%s: wildcard action %s", name, s.Sid, a)
				}
				for _, r := range s.Resources {
					if r == "*" && !awsWithoutResources[a] {
						t.Errorf("%s/%s: %s on every resource; name them", name, s.Sid, a)
					}
					if r != "*" && wildcardOutsideKey(r) {
						t.Errorf("%s/%s: %s has a wildcard outside an S3 object key", name, s.Sid, r)
					}
				}
			}
		}
	}
}

func wildcardOutsideKey(arn string) bool {
	if rest, ok := strings.CutPrefix(arn, "arn:aws:s3:::"); ok {
		bucket, _, _ := strings.Cut(rest, "/")
		return strings.ContainsAny(bucket, "*?")
	}
	return strings.ContainsAny(arn, "*?")
}

// cfn-lint (the CloudFormation linter) finds nothing in deploy/aws.
func TestCfnLint(t *testing.T) {
	bin, err := exec.LookPath("cfn-lint")
	if err != nil {
		msg := "cfn-lint is not installed (pip install cfn-lint); it lints deploy/aws/*.yaml"
		if os.Getenv("CLICKFLEET_REQUIRE_STACK") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	files, _ := filepath.Glob("../../deploy/aws/*.yaml")
	if len(files) == 0 {
		t.Fatal("no templates in deploy/aws")
	}
	cmd := exec.Command(bin, files...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("cfn-lint %s: %v\n%s", strings.Join(files, " "), err, out.String())
	}
}

// unitFile is a parsed systemd unit: key → values, per section.
func unitFile(t *testing.T, path string) map[string]map[string][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string][]string{}
	section := ""
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
			out[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s: %q is not key=value in a section", path, line)
			}
			out[section][k] = append(out[section][k], v)
		}
	}
	return out
}

// verifyUnit runs systemd-analyze verify on a copy of the unit whose binary is /bin/true (the check wants
// an executable); any complaint, warnings included, fails the test. Without systemd-analyze it logs and
// returns: the other checks still run.
func verifyUnit(t *testing.T, path string, unit []byte) {
	t.Helper()
	bin, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Logf("systemd-analyze is not installed: %s is not verified by systemd", path)
		return
	}
	copyPath := filepath.Join(t.TempDir(), filepath.Base(path))
	if err := os.WriteFile(copyPath, bytes.ReplaceAll(unit, []byte("/usr/local/bin/clickfleet"), []byte("/bin/true")), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "verify", "--man=no", copyPath).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify %s: %v\n%s", path, err, out)
	}
}

// The systemd units run clickfleet commands and flags that exist, with the settings the template's
// user-data writes to their environment files; the user-data holds the units as they are in deploy/ec2;
// their stop timeouts cover a clean stop; the instances' role is the two workers' task policies.
func TestSystemdUnitsMatchTheCLI(t *testing.T) {
	tp := loadTemplate(t, templateVariants[3].params)
	lt := tp.props(t, "LaunchTemplate")["LaunchTemplateData"].(map[string]any)
	userData := fmt.Sprint(lt["UserData"])
	if !strings.HasPrefix(userData, "#!/bin/bash\n") {
		t.Fatalf("the user-data is not a bash script:\n%s", userData)
	}
	if out, err := exec.Command("bash", "-n", "-c", userData).CombinedOutput(); err != nil {
		t.Errorf("the user-data does not parse as bash: %v\n%s", err, out)
	}
	units, _ := filepath.Glob("../../deploy/ec2/*.service")
	if len(units) != 2 {
		t.Fatalf("deploy/ec2 has units %v, want consume's and archive's", units)
	}
	for _, path := range units {
		t.Run(filepath.Base(path), func(t *testing.T) {
			b, _ := os.ReadFile(path)
			installed := fmt.Sprintf("cat > /etc/systemd/system/%s <<'UNIT'\n%sUNIT\n", filepath.Base(path), b)
			if !strings.Contains(userData, installed) {
				t.Errorf("the launch template's user-data does not install %s as it is in deploy/ec2", filepath.Base(path))
			}
			verifyUnit(t, path, b)
			u := unitFile(t, path)
			execStart := strings.Fields(u["Service"]["ExecStart"][0])
			if execStart[0] != "/usr/local/bin/clickfleet" {
				t.Fatalf("ExecStart runs %s", execStart[0])
			}
			cmd := cliCommand(t, execStart[1:])
			envFile := u["Service"]["EnvironmentFile"][0]
			m := regexp.MustCompile(`(?s)cat > ` + regexp.QuoteMeta(envFile) + ` <<'ENV'\n(.*?)\nENV\n`).FindStringSubmatch(userData)
			if m == nil {
				t.Fatalf("the user-data writes no %s", envFile)
			}
			env := map[string]string{}
			for _, line := range strings.Split(m[1], "\n") {
				k, v, _ := strings.Cut(line, "=")
				env[k] = v
			}
			applySettings(t, cmd, env)
			if got := cmd.Flag("log-format").Value.String(); got != "json" {
				t.Errorf("--log-format %s, want json", got)
			}
			stop, err := time.ParseDuration(u["Service"]["TimeoutStopSec"][0] + "s")
			if err != nil {
				t.Fatal(err)
			}
			if budget := shutdownBudget(t, cmd); stop < budget {
				t.Errorf("TimeoutStopSec %s is below --shutdown-timeout + flush + 10 s = %s", stop, budget)
			}
			if tag := "CLICKFLEET_LEASE_TABLE"; env[tag] != tp.params[map[string]string{"consume": "LeaseTableName", "archive": "ArchiveLeaseTableName"}[cmd.Name()]] {
				t.Errorf("%s=%s is not the %s lease table of the stack", tag, env[tag], cmd.Name())
			}
		})
	}
	stmts, awsManaged := tp.roleStatements(t, "InstanceRole")
	want := append(tp.policyStatements(t, "ConsumeAccess"), tp.policyStatements(t, "ArchiveAccess")...)
	binary := statement{Sid: "<nil>", Actions: []string{"s3:GetObject"}, Resources: []string{"arn:aws:s3:::builds/clickfleet/v1/clickfleet"}}
	if !reflect.DeepEqual(stmts, append(want, binary)) {
		t.Errorf("the instance role allows %+v; want consume's and archive's statements and reading the binary", stmts)
	}
	for _, arn := range awsManaged {
		if !strings.HasSuffix(arn, "/AmazonSSMManagedInstanceCore") && !strings.HasSuffix(arn, "/CloudWatchAgentServerPolicy") {
			t.Errorf("the instance role has the AWS policy %s", arn)
		}
	}
}

// The managed pieces are configured as the issue asks: provisioned streams sized by the parameters, the
// lake bucket encrypted, private, TLS-only and with a lifecycle for raw/, Redis and PostgreSQL encrypted
// (Aurora Serverless v2), the ingest behind a WAF web ACL with a rate-based rule and its API keys from
// Secrets Manager.
func TestTemplateManagedPieces(t *testing.T) {
	tp := loadTemplate(t, nil)
	for name, shards := range map[string]string{"InputStream": "ShardCount", "OffersStream": "OutputShardCount", "ErrorsStream": "OutputShardCount"} {
		p := tp.props(t, name)
		if p["StreamModeDetails"].(map[string]any)["StreamMode"] != "PROVISIONED" || p["ShardCount"] != tp.params[shards] {
			t.Errorf("%s: %v, want PROVISIONED with %s shards", name, p, shards)
		}
	}
	b := tp.props(t, "LakeBucket")
	if enc := fmt.Sprint(b["BucketEncryption"]); !strings.Contains(enc, "SSEAlgorithm:AES256") && !strings.Contains(enc, "aws:kms") {
		t.Errorf("lake bucket encryption %s", enc)
	}
	for k, v := range b["PublicAccessBlockConfiguration"].(map[string]any) {
		if v != "true" {
			t.Errorf("lake bucket %s = %v", k, v)
		}
	}
	if len(b["PublicAccessBlockConfiguration"].(map[string]any)) != 4 {
		t.Errorf("lake bucket public access block %v, want all four settings", b["PublicAccessBlockConfiguration"])
	}
	rawRule := false
	for _, r := range asSlice(b["LifecycleConfiguration"].(map[string]any)["Rules"]) {
		m := r.(map[string]any)
		rawRule = rawRule || (m["Prefix"] == "raw/" && m["Status"] == "Enabled" && m["ExpirationInDays"] == tp.params["RawExpirationDays"])
	}
	if !rawRule {
		t.Error("no enabled lifecycle rule expiring raw/ after RawExpirationDays")
	}
	pol := tp.props(t, "LakeBucketPolicy")["PolicyDocument"].(map[string]any)
	tls := false
	for _, s := range asSlice(pol["Statement"]) {
		m := s.(map[string]any)
		res := asStrings(m["Resource"])
		tls = tls || (m["Effect"] == "Deny" && fmt.Sprint(m["Condition"]) == "map[Bool:map[aws:SecureTransport:false]]" &&
			slices.Contains(res, "arn:aws:s3:::"+fmt.Sprint(tp.ref(t, "LakeBucket"))) && slices.Contains(res, "arn:aws:s3:::"+fmt.Sprint(tp.ref(t, "LakeBucket"))+"/*"))
	}
	if !tls {
		t.Errorf("the bucket policy does not deny requests without TLS on the bucket and its objects: %v", pol)
	}
	if r := tp.props(t, "Redis"); r["TransitEncryptionEnabled"] != "true" || r["AtRestEncryptionEnabled"] != "true" {
		t.Errorf("Redis encryption: %v", r)
	}
	for _, c := range tp.containers(t) {
		if url, ok := c.Environment["CLICKFLEET_REDIS_URL"]; ok && !strings.HasPrefix(url, "rediss://") {
			t.Errorf("%s: CLICKFLEET_REDIS_URL %s is not TLS (rediss://)", c.TaskDefinition, url)
		}
		if c.Command[0] == "ingest" && c.Secrets["CLICKFLEET_API_KEYS"] != "ApiKeysSecret" {
			t.Errorf("the ingest's API keys do not come from the ApiKeysSecret: %v", c.Secrets)
		}
	}
	if d := tp.props(t, "Database"); d["Engine"] != "aurora-postgresql" || d["StorageEncrypted"] != "true" || d["ServerlessV2ScalingConfiguration"] == nil ||
		tp.props(t, "DatabaseInstance")["DBInstanceClass"] != "db.serverless" {
		t.Errorf("PostgreSQL: %v, want encrypted Aurora PostgreSQL Serverless v2", d)
	}
	rate := false
	for _, r := range asSlice(tp.props(t, "WebAcl")["Rules"]) {
		m := r.(map[string]any)
		if st, ok := m["Statement"].(map[string]any)["RateBasedStatement"].(map[string]any); ok {
			rate = st["Limit"] == tp.params["WafRateLimit"] && m["Action"].(map[string]any)["Block"] != nil
		}
	}
	if a := tp.props(t, "WebAclAssociation"); !rate || a["ResourceArn"] != "LoadBalancer" {
		t.Errorf("the ALB has no WAF web ACL blocking above WafRateLimit per IP (rate rule %v, association %v)", rate, a)
	}
}
