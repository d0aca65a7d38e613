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
	"github.com/clickfleet/clickfleet/lake/report"
	"github.com/clickfleet/clickfleet/lease"
)

// The template's required parameters: the certificate and the host name it covers (HTTPS only), the
// alarms' address.
const (
	testCertificate = "arn:aws:acm:us-east-1:123456789012:certificate/x"
	testDomain      = "clicks.example.com"
	testAlarmEmail  = "oncall@example.com"
)

// withTLS returns params with the required parameters added.
func withTLS(params map[string]string) map[string]string {
	out := map[string]string{"CertificateArn": testCertificate, "DomainName": testDomain, "AlarmEmail": testAlarmEmail}
	for k, v := range params {
		out[k] = v
	}
	return out
}

// The template's variants: each Compute, with and without the dashboard and the Route 53 record.
var templateVariants = []struct {
	name   string
	params map[string]string
}{
	{"fargate", withTLS(map[string]string{"Dashboard": "disabled"})},
	{"fargate+dashboard", withTLS(map[string]string{"HostedZoneId": "Z0123456789ABC"})},
	{"ec2", withTLS(map[string]string{"Compute": "ec2"})},
	{"ec2-systemd", withTLS(map[string]string{"Compute": "ec2-systemd", "BinaryUrl": "s3://builds/clickfleet/v1/clickfleet", "Dashboard": "disabled"})},
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

// pendingSettings are settings the template sets that another branch is adding to the CLI: while the
// command lacks the flag the test logs it instead of failing; once it has it, the value is checked.
var pendingSettings = map[string]string{
	"CLICKFLEET_REDIS_WAIT_REPLICAS": "consume --redis-wait-replicas (the replica acknowledgement before a checkpoint)",
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
		if why, pending := pendingSettings[k]; !ok && pending {
			t.Logf("%s is not a setting of 'clickfleet %s' in this build yet: %s", k, cmd.Name(), why)
			continue
		}
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
					if cmd.DisableFlagParsing { // reconcile's stub in a build without cgo
						t.Skipf("clickfleet %s has no flags in this build (no cgo): a cgo build checks them", cmd.Name())
					}
					env := map[string]string{}
					for k, v := range c.Environment {
						env[k] = v
					}
					for k, v := range c.Secrets {
						if !strings.HasPrefix(k, "CLICKFLEET_") && k != "PGPASSWORD" && k != "PGUSER" && k != redisPasswordEnv {
							t.Errorf("secret %s is neither a setting nor PostgreSQL's or Redis's credential variable", k)
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
			want := []string{"ingest", "names-sync", "scale", "setup", "reconcile"}
			if v.params["Compute"] != "ec2-systemd" {
				want = append(want, "consume", "archive")
			}
			if tp.conditions["HasDashboard"] {
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

// consume and archive scale between 1 and the stream's open shards: out on the lag (above 60 s) only
// while fewer tasks run than open shards (clickfleet scale's EMF OpenShards, which the scale task
// writes), back to the shard count when more run, in on low CPU (not on a low lag, which holds whenever
// the fleet keeps up), with a CPU target that only adds; a removal never crosses the CPU target again.
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
			prefixes := []string{"Consume", "Archive"}
			cpuTarget := func(prefix string) map[string]any {
				return tp.props(t, prefix+"CpuTarget")["TargetTrackingScalingPolicyConfiguration"].(map[string]any)
			}
			if v.params["Compute"] == "ec2-systemd" {
				if len(targets) != 1 {
					t.Errorf("ec2-systemd: scalable targets %v, want the ingest's only", targets)
				}
				prefixes = []string{"WorkerInstances"}
				cpuTarget = func(prefix string) map[string]any {
					return tp.props(t, prefix+"CpuTarget")["TargetTrackingConfiguration"].(map[string]any)
				}
			}
			for _, prefix := range prefixes {
				cfg := cpuTarget(prefix)
				target, _ := strconv.ParseFloat(fmt.Sprint(cfg["TargetValue"]), 64)
				if cfg["DisableScaleIn"] != "true" {
					t.Errorf("%sCpuTarget scales in; scaling in is the low-CPU policy's", prefix)
				}
				checkWorkerScaling(t, tp, prefix, target)
			}
			// clickfleet scale resizes the stream up to the same maximum and reports the open shards.
			for _, c := range tp.containers(t) {
				if c.Command[0] != "scale" {
					continue
				}
				if c.Environment["CLICKFLEET_MAX_SHARDS"] != tp.params["MaxShardCount"] {
					t.Errorf("scale's CLICKFLEET_MAX_SHARDS %q, want MaxShardCount %s", c.Environment["CLICKFLEET_MAX_SHARDS"], tp.params["MaxShardCount"])
				}
				cmd := cliCommand(t, c.Command)
				applySettings(t, cmd, c.Environment)
				if d, ok := durationFlag(t, cmd, "emf-interval"); !ok || d <= 0 || d > time.Minute {
					t.Errorf("scale: --emf-interval %s, want 1s..60s (the alarms' period)", d)
				}
			}
		})
	}
}

// scalingAlarm is an alarm whose action is one of a prefix's scaling policies.
type scalingAlarm struct {
	name    string
	props   map[string]any
	metrics []alarmMetric
}

// checkWorkerScaling checks a worker fleet's scaling policies (prefix ScaleOut, ToShards, ScaleIn) and the
// alarms that trigger them.
func checkWorkerScaling(t *testing.T, tp *template, prefix string, cpuTarget float64) {
	t.Helper()
	byPolicy := map[string]scalingAlarm{}
	for _, a := range tp.resourcesOfType("AWS::CloudWatch::Alarm") {
		p := tp.props(t, a)
		for _, action := range asStrings(p["AlarmActions"]) {
			if strings.HasPrefix(action, prefix) {
				byPolicy[strings.TrimPrefix(action, prefix)] = scalingAlarm{a, p, alarmMetrics(p)}
			}
		}
	}
	has := func(al scalingAlarm, namespace, name string) bool {
		return slices.ContainsFunc(al.metrics, func(m alarmMetric) bool { return m.Namespace == namespace && m.Name == name })
	}
	shards := func(al scalingAlarm) bool { return has(al, emfNamespace, emfMetricShards) }
	span := func(al scalingAlarm) int {
		evals, _ := strconv.Atoi(fmt.Sprint(al.props["EvaluationPeriods"]))
		period := 60
		if len(al.metrics) > 0 && al.metrics[0].Period > 0 {
			period = al.metrics[0].Period
		}
		return evals * period
	}
	out, ok := byPolicy["ScaleOut"]
	if !ok || !has(out, emfNamespace, emfMetricLag) || !shards(out) || fmt.Sprint(out.props["Threshold"]) != "60000" || out.props["ComparisonOperator"] != "GreaterThanThreshold" {
		t.Errorf("%sScaleOut: alarm %+v; want the lag above 60000 ms, gated by the open shards", prefix, out.name)
	}
	toShards, ok := byPolicy["ToShards"]
	if !ok || !shards(toShards) || fmt.Sprint(toShards.props["Threshold"]) != "0" || toShards.props["ComparisonOperator"] != "GreaterThanThreshold" {
		t.Errorf("%sToShards: alarm %q; want tasks above the open shards", prefix, toShards.name)
	}
	in, ok := byPolicy["ScaleIn"]
	if !ok {
		t.Fatalf("no alarm triggers %sScaleIn", prefix)
	}
	if has(in, emfNamespace, emfMetricLag) && !has(in, "AWS/ECS", "CPUUtilization") && !has(in, "AWS/EC2", "CPUUtilization") {
		t.Errorf("%s scales in on the lag alone (%s): true whenever the fleet keeps up", prefix, in.name)
	}
	threshold, _ := strconv.ParseFloat(fmt.Sprint(in.props["Threshold"]), 64)
	if in.props["ComparisonOperator"] != "LessThanThreshold" || span(in) < 900 {
		t.Errorf("%s: %v %v for %d s; want CPU below a threshold for 15 minutes", in.name, in.props["ComparisonOperator"], threshold, span(in))
	}
	// Removing one of n >= 2 tasks at CPU c multiplies c by n/(n-1) <= 2: it must stay under the target.
	if 2*threshold >= cpuTarget {
		t.Errorf("%s: scale-in below %.0f %% CPU and the CPU target %.0f %%: a removal (at most doubling the CPU) would cross the target and be undone", prefix, threshold, cpuTarget)
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
	known := map[string]bool{emfMetricLag: true, emfMetricRecords: true, emfMetricLeases: true, emfMetricShards: true}
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
				apps[tp.name(t, "LeaseTable")], apps[tp.name(t, "ArchiveLeaseTable")] = true, true
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
						if m.Name == emfMetricShards { // clickfleet scale's: the stream only
							if len(m.Dimensions) != 1 || m.Dimensions[emfDimStream] != tp.name(t, "InputStream") {
								t.Errorf("%s: dimensions %v, want %s=%s only", a, m.Dimensions, emfDimStream, tp.name(t, "InputStream"))
							}
							continue
						}
						if len(m.Dimensions) != 2 || m.Dimensions[emfDimStream] != tp.name(t, "InputStream") || !apps[m.Dimensions[emfDimApplication]] {
							t.Errorf("%s: dimensions %v, want %s=%s and %s=one of %v", a, m.Dimensions, emfDimStream, tp.name(t, "InputStream"), emfDimApplication, apps)
						}
						if m.Name == emfMetricLag && fmt.Sprint(p["Threshold"]) == "300000" && fmt.Sprint(p["ComparisonOperator"]) == "GreaterThanThreshold" {
							lagAlarms++
						}
					case "AWS/Kinesis":
						switch {
						case strings.HasSuffix(m.Name, "ProvisionedThroughputExceeded"):
							kinesisAlarms++
						case m.Name != "GetRecords.IteratorAgeMilliseconds":
							t.Errorf("%s: unexpected Kinesis metric %s", a, m.Name)
						}
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
	tp := loadTemplate(t, withTLS(map[string]string{"LakeBucketName": "lake-under-test"}))
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

// sqlComment matches an SQL line comment.
var sqlComment = regexp.MustCompile(`--[^\n]*`)

// queryTables returns the tables a query reads (FROM and JOIN), less the names its WITH clause defines.
func queryTables(q string) []string {
	q = sqlComment.ReplaceAllString(q, "")
	ctes := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?i)(?:\bwith|,)\s*([a-z_][a-z0-9_]*)\s+as\s*\(`).FindAllStringSubmatch(q, -1) {
		ctes[strings.ToLower(m[1])] = true
	}
	var out []string
	for _, m := range regexp.MustCompile(`(?i)\b(?:from|join)\s+([a-z_][a-z0-9_."]*)`).FindAllStringSubmatch(q, -1) {
		if name := strings.ToLower(m[1]); !ctes[name] && !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}

// The Athena named queries are the report SQL (lake/report/sql, unchanged), or the Athena version of a
// report in deploy/aws/athena where the report reads more than the lake; each reads only the tables the
// stack catalogues in Glue (so Athena can run it), and every report has its named query.
func TestTemplateNamedQueriesAreTheReportSQL(t *testing.T) {
	tp := loadTemplate(t, withTLS(nil))
	catalogued := map[string]bool{}
	for _, name := range tp.resourcesOfType("AWS::Glue::Table") {
		catalogued[fmt.Sprint(tp.props(t, name)["TableInput"].(map[string]any)["Name"])] = true
	}
	queries := map[string]string{}
	for _, name := range tp.resourcesOfType("AWS::Athena::NamedQuery") {
		p := tp.props(t, name)
		queries[fmt.Sprint(p["Name"])] = fmt.Sprint(p["QueryString"])
		if p["WorkGroup"] != "AthenaWorkGroup" || p["Database"] != "GlueDatabase" {
			t.Errorf("%s is not in the stack's work group and database", name)
		}
		for _, table := range queryTables(fmt.Sprint(p["QueryString"])) {
			if !catalogued[table] {
				t.Errorf("named query %s reads %s, which no Glue table of the stack provides (tables: %v)", p["Name"], table, keys(anyMap(catalogued)))
			}
		}
	}
	reports, err := filepath.Glob("../../lake/report/sql/*.sql")
	if err != nil || len(reports) == 0 {
		t.Fatalf("no report SQL: %v", err)
	}
	for _, f := range reports {
		name := strings.TrimSuffix(filepath.Base(f), ".sql")
		if athena := "../../deploy/aws/athena/" + name + ".sql"; fileExists(athena) {
			f = athena
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		q, ok := queries[name]
		if !ok {
			t.Errorf("no named query %s", name)
			continue
		}
		if rep, err := report.Lookup(name); err == nil && rep.Sessions && name != report.SessionsReport {
			// Athena has no view sessions: the report with sql/sessions.sql inlined ('catalog --format named-queries').
			a, err := report.AthenaQuery(name)
			if err != nil {
				t.Fatal(err)
			}
			b = []byte(a)
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

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
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
	tp := loadTemplate(t, withTLS(nil))
	var capture captureTables
	ctx := context.Background()
	for _, r := range []string{"LeaseTable", "ArchiveLeaseTable", "ScaleLeaseTable"} {
		if err := lease.EnsureTable(ctx, &capture, tp.name(t, r)); err != nil {
			t.Fatalf("lease tables of %s: %v", tp.name(t, r), err)
		}
	}
	if _, err := provision.EnsureSessionsTable(ctx, &capture, tp.name(t, "SessionsTable")); err != nil {
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
	units, _ := filepath.Glob("../../deploy/ec2/clickfleet-[a-z]*[a-z].service")
	if len(units) != 2 {
		t.Fatalf("deploy/ec2 has units %v, want consume's and archive's", units)
	}
	checkSystemdOperations(t, tp, userData)
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
			if tag := "CLICKFLEET_LEASE_TABLE"; env[tag] != tp.name(t, map[string]string{"consume": "LeaseTable", "archive": "ArchiveLeaseTable"}[cmd.Name()]) {
				t.Errorf("%s=%s is not the %s lease table of the stack", tag, env[tag], cmd.Name())
			}
		})
	}
	stmts, awsManaged := tp.roleStatements(t, "InstanceRole")
	want := append(tp.policyStatements(t, "ConsumeAccess"), tp.policyStatements(t, "ArchiveAccess")...)
	binary := statement{Sid: "Binary", Actions: []string{"s3:GetObject"}, Resources: []string{"arn:aws:s3:::builds/clickfleet/v1/clickfleet"}}
	token := statement{Sid: "RedisToken", Actions: []string{"secretsmanager:GetSecretValue"}, Resources: []string{"RedisAuthSecret"}}
	if !reflect.DeepEqual(stmts, append(want, binary, token)) {
		t.Errorf("the instance role allows %+v; want consume's and archive's statements, reading the binary and the Redis token", stmts)
	}
	if !strings.Contains(userData, `--secret-id "RedisAuthSecret"`) || !strings.Contains(userData, "REDISCLI_AUTH=") {
		t.Error("the user-data does not give the units the Redis token (REDISCLI_AUTH from RedisAuthSecret)")
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
	tp := loadTemplate(t, withTLS(nil))
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

// accountNames are the properties that name a resource within the account and region (two resources of
// the type cannot share the name), by resource type; a dot walks into a nested map.
var accountNames = map[string][]string{
	"AWS::Kinesis::Stream": {"Name"}, "AWS::DynamoDB::Table": {"TableName"}, "AWS::S3::Bucket": {"BucketName"},
	"AWS::Glue::Database": {"DatabaseInput.Name"}, "AWS::Athena::WorkGroup": {"Name"}, "AWS::Logs::LogGroup": {"LogGroupName"},
	"AWS::ECS::TaskDefinition": {"Family"}, "AWS::ECS::Cluster": {"ClusterName"}, "AWS::Cognito::UserPoolDomain": {"Domain"},
	"AWS::ElastiCache::ReplicationGroup": {"ReplicationGroupId"}, "AWS::ElastiCache::ParameterGroup": {"CacheParameterGroupName"},
	"AWS::MemoryDB::Cluster": {"ClusterName"}, "AWS::MemoryDB::ACL": {"ACLName"}, "AWS::MemoryDB::User": {"UserName"},
	"AWS::SNS::Topic": {"TopicName"}, "AWS::Lambda::Function": {"FunctionName"}, "AWS::AutoScaling::AutoScalingGroup": {"AutoScalingGroupName"},
	"AWS::WAFv2::WebACL": {"Name"}, "AWS::ApplicationAutoScaling::ScalingPolicy": {"PolicyName"}, "AWS::SecretsManager::Secret": {"Name"},
	"AWS::IAM::Role": {"RoleName"}, "AWS::IAM::ManagedPolicy": {"ManagedPolicyName"}, "AWS::CloudWatch::Alarm": {"AlarmName"},
	"AWS::RDS::DBCluster": {"DBClusterIdentifier"}, "AWS::RDS::DBInstance": {"DBInstanceIdentifier"}, "AWS::EC2::LaunchTemplate": {"LaunchTemplateName"},
}

// Two stacks of the template in one account and region, both with the default parameters, name no
// resource alike: every account-wide name is derived from the stack's name (or left to CloudFormation).
func TestTemplateTwoStacksInOneRegion(t *testing.T) {
	for _, v := range templateVariants {
		t.Run(v.name, func(t *testing.T) {
			a := loadTemplateAs(t, "blue", "0a1b2c3d-0000-1111-2222-333344445555", v.params)
			b := loadTemplateAs(t, "green", "9f8e7d6c-0000-1111-2222-333344445555", v.params)
			for name, r := range a.resources {
				paths, ok := accountNames[fmt.Sprint(r["Type"])]
				if !ok || !a.exists(name) {
					continue
				}
				pa, pb := a.props(t, name), b.props(t, name)
				for _, path := range paths {
					va, vb := lookupPath(pa, path), lookupPath(pb, path)
					if va == nil {
						continue // CloudFormation names it after the stack
					}
					if fmt.Sprint(va) == fmt.Sprint(vb) {
						t.Errorf("%s: %s is %q in both stacks; derive it from the stack's name", name, path, va)
					}
				}
			}
		})
	}
}

// lookupPath returns the value at a dotted path of nested maps, nil when absent.
func lookupPath(m map[string]any, path string) any {
	var v any = m
	for _, k := range strings.Split(path, ".") {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = mm[k]
	}
	return v
}

// The ALB answers HTTPS only: the stack cannot be created without a certificate and its host name (a
// Rule), port 80 only redirects to 443, the ingest and the dashboard listen with the certificate and a
// TLS 1.3 policy, the custom domain is an output and gets its alias record when a hosted zone is given.
func TestTemplateHttpsOnly(t *testing.T) {
	for _, tc := range []struct {
		name   string
		params map[string]string
		want   []string
	}{
		{"no certificate", withTLS(map[string]string{"CertificateArn": ""}), []string{"CertificateArn is required"}},
		{"no domain", withTLS(map[string]string{"DomainName": ""}), []string{"DomainName is required"}},
		{"both", withTLS(nil), nil},
	} {
		t.Run("rules/"+tc.name, func(t *testing.T) {
			got := loadTemplate(t, tc.params).ruleFailures(t)
			if len(got) != len(tc.want) {
				t.Fatalf("rule failures %q, want %d naming %q", got, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("rule failure %q does not say %q", got[i], w)
				}
			}
		})
	}
	for _, v := range templateVariants {
		t.Run(v.name, func(t *testing.T) {
			tp := loadTemplate(t, v.params)
			ports := map[string]map[string]any{}
			for _, name := range tp.resourcesOfType("AWS::ElasticLoadBalancingV2::Listener") {
				p := tp.props(t, name)
				ports[fmt.Sprint(p["Port"])] = p
				actions := asSlice(p["DefaultActions"])
				if p["Protocol"] == "HTTP" {
					want := map[string]any{"Type": "redirect", "RedirectConfig": map[string]any{"Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301"}}
					if len(actions) != 1 || !reflect.DeepEqual(actions[0], want) {
						t.Errorf("%s (HTTP port %v) answers %v, want only a redirect to HTTPS 443", name, p["Port"], actions)
					}
					continue
				}
				if p["Protocol"] != "HTTPS" || !strings.HasPrefix(fmt.Sprint(p["SslPolicy"]), "ELBSecurityPolicy-TLS13") ||
					fmt.Sprint(p["Certificates"]) != fmt.Sprint([]any{map[string]any{"CertificateArn": testCertificate}}) {
					t.Errorf("%s: protocol %v, policy %v, certificates %v; want HTTPS with the certificate and a TLS 1.3 policy", name, p["Protocol"], p["SslPolicy"], p["Certificates"])
				}
			}
			if https, ok := ports["443"]; !ok || fmt.Sprint(https["DefaultActions"]) != fmt.Sprint([]any{map[string]any{"Type": "forward", "TargetGroupArn": "IngestTargetGroup"}}) {
				t.Errorf("no HTTPS listener on 443 forwarding to the ingest: %v", https)
			}
			if _, ok := ports["80"]; !ok {
				t.Error("no listener on port 80 redirecting to HTTPS")
			}
			if _, ok := ports["8443"]; ok != tp.conditions["HasDashboard"] {
				t.Errorf("dashboard listener on 8443: %v, dashboard %v", ok, tp.conditions["HasDashboard"])
			}
			out := tp.outputs(t)
			if out["IngestUrl"] != "https://"+testDomain+"/" || out["DomainName"] != testDomain {
				t.Errorf("outputs IngestUrl %q and DomainName %q, want https://%s/ and %s", out["IngestUrl"], out["DomainName"], testDomain, testDomain)
			}
			records := tp.resourcesOfType("AWS::Route53::RecordSet")
			if v.params["HostedZoneId"] == "" {
				if len(records) > 0 {
					t.Errorf("records %v without a hosted zone", records)
				}
				return
			}
			if len(records) != 1 {
				t.Fatalf("records %v, want the domain's alias", records)
			}
			r := tp.props(t, records[0])
			alias, _ := r["AliasTarget"].(map[string]any)
			if r["HostedZoneId"] != v.params["HostedZoneId"] || r["Name"] != testDomain || r["Type"] != "A" ||
				alias["DNSName"] != "fake:LoadBalancer.DNSName" || alias["HostedZoneId"] != "fake:LoadBalancer.CanonicalHostedZoneID" {
				t.Errorf("record %v, want an A alias of %s to the ALB in zone %s", r, testDomain, v.params["HostedZoneId"])
			}
		})
	}
}

// No single zone: by default each zone's private subnet leaves through a NAT gateway in its own zone
// (NatGateways one: a single one, the cheaper choice), and the AWS APIs the tasks call most have
// interface endpoints in both zones, reachable on 443 from the VPC; the gateway endpoints serve both
// route tables.
func TestTemplateNoSingleZone(t *testing.T) {
	for _, tc := range []struct {
		nat  string
		nats int
	}{{"per-zone", 2}, {"one", 1}} {
		t.Run(tc.nat, func(t *testing.T) {
			tp := loadTemplate(t, withTLS(map[string]string{"NatGateways": tc.nat}))
			zoneOf := func(subnet string) string { return fmt.Sprint(tp.props(t, subnet)["AvailabilityZone"]) }
			natZone := map[string]string{}
			for _, n := range tp.resourcesOfType("AWS::EC2::NatGateway") {
				natZone[n] = zoneOf(fmt.Sprint(tp.props(t, n)["SubnetId"]))
			}
			if len(natZone) != tc.nats {
				t.Fatalf("NAT gateways %v, want %d", natZone, tc.nats)
			}
			tableOf := map[string]string{}
			for _, a := range tp.resourcesOfType("AWS::EC2::SubnetRouteTableAssociation") {
				p := tp.props(t, a)
				tableOf[fmt.Sprint(p["SubnetId"])] = fmt.Sprint(p["RouteTableId"])
			}
			private := []string{"PrivateSubnetA", "PrivateSubnetB"}
			zones := map[string]bool{}
			var tables []string
			for _, subnet := range private {
				zones[zoneOf(subnet)] = true
				tables = append(tables, tableOf[subnet])
				nat := ""
				for _, r := range tp.resourcesOfType("AWS::EC2::Route") {
					p := tp.props(t, r)
					if p["RouteTableId"] == tableOf[subnet] && p["DestinationCidrBlock"] == "0.0.0.0/0" {
						nat = fmt.Sprint(p["NatGatewayId"])
					}
				}
				if _, ok := natZone[nat]; !ok {
					t.Errorf("%s's default route goes to %q, not a NAT gateway", subnet, nat)
				} else if tc.nats > 1 && natZone[nat] != zoneOf(subnet) {
					t.Errorf("%s (%s) leaves through %s in %s: a zone's outage cuts the other off", subnet, zoneOf(subnet), nat, natZone[nat])
				}
			}
			if len(zones) != 2 || tables[0] == tables[1] {
				t.Errorf("private subnets in zones %v with route tables %v, want two zones with a table each", zones, tables)
			}
			services := map[string]bool{}
			for _, e := range tp.resourcesOfType("AWS::EC2::VPCEndpoint") {
				p := tp.props(t, e)
				svc := strings.TrimPrefix(fmt.Sprint(p["ServiceName"]), "com.amazonaws."+fakeRegion+".")
				services[svc] = true
				switch p["VpcEndpointType"] {
				case "Gateway":
					if !reflect.DeepEqual(asStrings(p["RouteTableIds"]), tables) {
						t.Errorf("%s serves route tables %v, want %v", e, p["RouteTableIds"], tables)
					}
				case "Interface":
					if !reflect.DeepEqual(asStrings(p["SubnetIds"]), private) || p["PrivateDnsEnabled"] != "true" {
						t.Errorf("%s: subnets %v, private DNS %v; want both private subnets with private DNS", e, p["SubnetIds"], p["PrivateDnsEnabled"])
					}
					for _, sg := range asStrings(p["SecurityGroupIds"]) {
						if !strings.Contains(fmt.Sprint(tp.props(t, sg)["SecurityGroupIngress"]), "FromPort:443") {
							t.Errorf("%s: security group %s does not admit HTTPS", e, sg)
						}
					}
				default:
					t.Errorf("%s: endpoint type %v", e, p["VpcEndpointType"])
				}
			}
			for _, want := range []string{"s3", "dynamodb", "kinesis-streams", "logs", "ecr.api", "ecr.dkr", "secretsmanager"} {
				if !services[want] {
					t.Errorf("no VPC endpoint for %s (endpoints: %v)", want, keys(anyMap(services)))
				}
			}
		})
	}
}

// logicalID returns the logical id a security group, service or task definition value names: !Ref X
// evaluates to X, !GetAtt X.GroupId to fake:X.GroupId.
func logicalID(v any) string {
	s := strings.TrimPrefix(fmt.Sprint(v), "fake:")
	id, _, _ := strings.Cut(s, ".")
	return id
}

// commandGroups returns, per clickfleet command the stack runs, the security groups of what runs it:
// its ECS service's tasks, the ec2-systemd instances (consume and archive) or, for setup, the stack's
// setup security group.
func commandGroups(t *testing.T, tp *template) map[string][]string {
	t.Helper()
	commandOf := map[string]string{}
	for _, c := range tp.containers(t) {
		commandOf[c.TaskDefinition] = c.Command[0]
	}
	out := map[string][]string{}
	for _, svc := range tp.resourcesOfType("AWS::ECS::Service") {
		p := tp.props(t, svc)
		cfg := p["NetworkConfiguration"].(map[string]any)["AwsvpcConfiguration"].(map[string]any)
		cmd := commandOf[logicalID(p["TaskDefinition"])]
		for _, g := range asStrings(cfg["SecurityGroups"]) {
			out[cmd] = append(out[cmd], logicalID(g))
		}
	}
	if tp.exists("LaunchTemplate") {
		lt := tp.props(t, "LaunchTemplate")["LaunchTemplateData"].(map[string]any)
		for _, g := range asStrings(lt["SecurityGroupIds"]) {
			who := "ecs-instance"
			if tp.conditions["UseSystemd"] {
				who = "consume"
				out["archive"] = append(out["archive"], logicalID(g))
			}
			out[who] = append(out[who], logicalID(g))
		}
	}
	out["setup"] = append(out["setup"], logicalID(tp.outputs(t)["SetupSecurityGroup"]))
	return out
}

// ingressSources returns, per security group, the groups (or CIDR blocks) its ingress rules admit.
func ingressSources(t *testing.T, tp *template) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	add := func(group string, rule map[string]any) {
		if src, ok := rule["SourceSecurityGroupId"]; ok {
			out[group] = append(out[group], logicalID(src))
		}
		if cidr, ok := rule["CidrIp"]; ok {
			out[group] = append(out[group], fmt.Sprint(cidr))
		}
	}
	for _, g := range tp.resourcesOfType("AWS::EC2::SecurityGroup") {
		out[g] = nil
		for _, r := range asSlice(tp.props(t, g)["SecurityGroupIngress"]) {
			add(g, r.(map[string]any))
		}
	}
	for _, r := range tp.resourcesOfType("AWS::EC2::SecurityGroupIngress") {
		p := tp.props(t, r)
		add(logicalID(p["GroupId"]), p)
	}
	return out
}

// Isolation: each service has its own security groups (five at least in all); Redis admits exactly
// consume, archive and names-sync, PostgreSQL exactly names-sync and setup (and the password rotation),
// so the internet-facing ingest and the ALB reach neither; only the ALB is open to the internet.
func TestTemplateSecurityGroupsIsolate(t *testing.T) {
	for _, v := range templateVariants {
		t.Run(v.name, func(t *testing.T) {
			tp := loadTemplate(t, v.params)
			groups, sources := commandGroups(t, tp), ingressSources(t, tp)
			if n := len(tp.resourcesOfType("AWS::EC2::SecurityGroup")); n < 5 {
				t.Errorf("%d security groups, want at least 5 (one per kind of caller)", n)
			}
			union := func(who ...string) []string {
				var out []string
				for _, w := range who {
					out = append(out, groups[w]...)
				}
				slices.Sort(out)
				return slices.Compact(out)
			}
			admitted := func(ids []string) []string {
				var out []string
				for _, id := range ids {
					out = append(out, sources[logicalID(id)]...)
				}
				slices.Sort(out)
				return slices.Compact(out)
			}
			redis := admitted(asStrings(tp.props(t, "Redis")["SecurityGroupIds"]))
			db := admitted(asStrings(tp.props(t, "Database")["VpcSecurityGroupIds"]))
			dbCallers := []string{"names-sync", "setup"}
			if got, want := redis, union("consume", "archive", "names-sync"); !reflect.DeepEqual(got, want) {
				t.Errorf("Redis admits %v, want exactly consume's, archive's and names-sync's groups %v", got, want)
			}
			want := union(dbCallers...)
			if tp.exists("DatabaseRotationSecurityGroup") {
				want = append(want, "DatabaseRotationSecurityGroup")
				slices.Sort(want)
			}
			if !reflect.DeepEqual(db, want) {
				t.Errorf("PostgreSQL admits %v, want exactly %v", db, want)
			}
			for _, g := range append(groups["ingest"], "AlbSecurityGroup") {
				if slices.Contains(redis, g) || slices.Contains(db, g) {
					t.Errorf("%s (the ingest's or the ALB's) reaches Redis or PostgreSQL", g)
				}
			}
			for cmd, gs := range groups {
				if cmd == "ingest" {
					continue
				}
				for _, g := range gs {
					if slices.Contains(groups["ingest"], g) {
						t.Errorf("%s shares the ingest's security group %s", cmd, g)
					}
				}
			}
			for g, srcs := range sources {
				if slices.Contains(srcs, "0.0.0.0/0") && g != "AlbSecurityGroup" {
					t.Errorf("%s is open to the internet", g)
				}
			}
		})
	}
}

// instanceResources are what the ECS container instances offer: vCPUs, memory for tasks (MiB, what the
// ECS-optimized AMI registers, about 7 % below the instance's) and network interfaces.
var instanceResources = map[string]struct{ cpu, memory, enis int }{
	"c6i.large": {2048, 3700, 3}, "c6i.xlarge": {4096, 7500, 4}, "c6i.2xlarge": {8192, 15200, 4},
}

// Compute ec2: the container instances cannot lend their role to a task (one metadata hop, and
// ECS_AWSVPC_BLOCK_IMDS), and InstanceMaxSize of the default instance type holds the most tasks the
// services scale to, counting each instance's network interfaces (one per awsvpc task, without ENI
// trunking), CPU and memory.
func TestTemplateEc2Capacity(t *testing.T) {
	tp := loadTemplate(t, templateVariants[2].params)
	data := tp.props(t, "LaunchTemplate")["LaunchTemplateData"].(map[string]any)
	if hop := data["MetadataOptions"].(map[string]any)["HttpPutResponseHopLimit"]; hop != "1" {
		t.Errorf("HttpPutResponseHopLimit %v, want 1: a container must not reach the instance's role", hop)
	}
	if !strings.Contains(fmt.Sprint(data["UserData"]), "ECS_AWSVPC_BLOCK_IMDS=true") {
		t.Error("the container instances' user data does not set ECS_AWSVPC_BLOCK_IMDS=true")
	}
	typ := fmt.Sprint(data["InstanceType"])
	res, ok := instanceResources[typ]
	if !ok {
		t.Fatalf("instance type %s: its resources are not in the test's table", typ)
	}
	maxCount := map[string]int{}
	for _, st := range tp.resourcesOfType("AWS::ApplicationAutoScaling::ScalableTarget") {
		p := tp.props(t, st)
		n, _ := strconv.Atoi(fmt.Sprint(p["MaxCapacity"]))
		maxCount[logicalID(strings.TrimPrefix(fmt.Sprint(p["ResourceId"]), "service/Cluster/"))] = n
	}
	tasks, maxCPU, maxMemory := 0, 0, 0
	for _, svc := range tp.resourcesOfType("AWS::ECS::Service") {
		p := tp.props(t, svc)
		n, ok := maxCount[svc]
		if !ok {
			n, _ = strconv.Atoi(fmt.Sprint(p["DesiredCount"]))
		}
		td := tp.props(t, logicalID(p["TaskDefinition"]))
		cpu, _ := strconv.Atoi(fmt.Sprint(td["Cpu"]))
		mem, _ := strconv.Atoi(fmt.Sprint(td["Memory"]))
		tasks += n
		maxCPU, maxMemory = max(maxCPU, cpu), max(maxMemory, mem)
	}
	perInstance := min(res.enis-1, res.cpu/maxCPU, res.memory/maxMemory)
	instances, _ := strconv.Atoi(fmt.Sprint(tp.props(t, "AutoScalingGroup")["MaxSize"]))
	if instances*perInstance < tasks {
		t.Errorf("%d × %s hold %d tasks (%d each: %d interfaces less the instance's, %d/%d CPU, %d/%d MiB), the services scale to %d",
			instances, typ, instances*perInstance, perInstance, res.enis, res.cpu, maxCPU, res.memory, maxMemory, tasks)
	}
	t.Logf("%d tasks at most; %d × %s hold %d", tasks, instances, typ, instances*perInstance)
}

// The exactly-once user state survives a node's loss: ElastiCache with a replica in another zone and
// automatic failover, consume checkpointing only what the replica acknowledged, no burstable node, no
// eviction, AUTH with a token of the stack's own secret (given to every task that uses Redis), daily
// snapshots kept a week, and alarms on memory and on the engine's CPU.
func TestTemplateDurableUserState(t *testing.T) {
	for _, v := range templateVariants {
		t.Run(v.name, func(t *testing.T) {
			tp := loadTemplate(t, v.params)
			r := tp.props(t, "Redis")
			replicas, _ := strconv.Atoi(fmt.Sprint(r["NumCacheClusters"]))
			replicas--
			if replicas < 1 || r["AutomaticFailoverEnabled"] != "true" || r["MultiAZEnabled"] != "true" {
				t.Errorf("Redis: %d replicas, failover %v, multi-AZ %v; want a replica in another zone and automatic failover", replicas, r["AutomaticFailoverEnabled"], r["MultiAZEnabled"])
			}
			if strings.HasPrefix(fmt.Sprint(r["CacheNodeType"]), "cache.t") {
				t.Errorf("Redis node type %v is burstable", r["CacheNodeType"])
			}
			for _, typ := range asStrings(tp.raw["Parameters"].(map[string]any)["RedisNodeType"].(map[string]any)["AllowedValues"]) {
				if strings.HasPrefix(typ, "cache.t") {
					t.Errorf("RedisNodeType allows the burstable %s", typ)
				}
			}
			pg := tp.props(t, logicalID(r["CacheParameterGroupName"]))
			if fmt.Sprint(pg["Properties"].(map[string]any)["maxmemory-policy"]) != "noeviction" {
				t.Errorf("Redis parameter group %v, want maxmemory-policy noeviction", pg)
			}
			if n, _ := strconv.Atoi(fmt.Sprint(r["SnapshotRetentionLimit"])); n < 1 {
				t.Errorf("Redis keeps %v snapshots, want daily ones", r["SnapshotRetentionLimit"])
			}
			secret := ""
			if m := regexp.MustCompile(`^\{\{resolve:secretsmanager:([A-Za-z]+)\}\}$`).FindStringSubmatch(fmt.Sprint(r["AuthToken"])); m != nil {
				secret = m[1]
			}
			if tp.resources[secret]["Type"] != "AWS::SecretsManager::Secret" || r["TransitEncryptionEnabled"] != "true" {
				t.Fatalf("Redis AuthToken %v, transit encryption %v: want TLS and a token from a secret of the stack", r["AuthToken"], r["TransitEncryptionEnabled"])
			}
			for _, c := range tp.containers(t) {
				if _, ok := c.Environment["CLICKFLEET_REDIS_URL"]; ok && c.Secrets[redisPasswordEnv] != secret {
					t.Errorf("%s uses Redis without %s from %s: %v", c.TaskDefinition, redisPasswordEnv, secret, c.Secrets)
				}
				if c.Command[0] == "consume" {
					if n, _ := strconv.Atoi(c.Environment["CLICKFLEET_REDIS_WAIT_REPLICAS"]); n < 1 || n > replicas {
						t.Errorf("consume: CLICKFLEET_REDIS_WAIT_REPLICAS %q, want 1..%d (the replicas)", c.Environment["CLICKFLEET_REDIS_WAIT_REPLICAS"], replicas)
					}
				}
			}
			watched := map[string]bool{}
			for _, a := range tp.resourcesOfType("AWS::CloudWatch::Alarm") {
				nodes := 0
				for _, m := range alarmMetrics(tp.props(t, a)) {
					if m.Namespace == "AWS/ElastiCache" && strings.HasPrefix(m.Dimensions["CacheClusterId"], "Redis-00") {
						nodes++
						if nodes == replicas+1 {
							watched[m.Name] = true
						}
					}
				}
			}
			for _, metric := range []string{"DatabaseMemoryUsagePercentage", "EngineCPUUtilization"} {
				if !watched[metric] {
					t.Errorf("no alarm on %s of every Redis node", metric)
				}
			}
		})
	}
}

// Data protection: Aurora, the DynamoDB tables and the ALB refuse deletion; the sessions table and the
// lake bucket outlive the stack and a replacement; Aurora keeps a week of backups at least. Operations:
// the stack's own SNS topic mails AlarmEmail, every alarm but a scaling trigger notifies it, and there are
// alarms for DynamoDB throttling, ALB and ingest 5xx, the lake's write errors and the iterator age.
func TestTemplateDataProtectionAndAlarms(t *testing.T) {
	for _, v := range templateVariants {
		t.Run(v.name, func(t *testing.T) {
			tp := loadTemplate(t, v.params)
			db := tp.props(t, "Database")
			if days, _ := strconv.Atoi(fmt.Sprint(db["BackupRetentionPeriod"])); db["DeletionProtection"] != "true" || days < 7 {
				t.Errorf("Aurora: deletion protection %v, backups %v days; want protected with at least 7", db["DeletionProtection"], db["BackupRetentionPeriod"])
			}
			for _, table := range tp.resourcesOfType("AWS::DynamoDB::Table") {
				if tp.props(t, table)["DeletionProtectionEnabled"] != "true" {
					t.Errorf("%s: no DeletionProtectionEnabled", table)
				}
			}
			for _, keep := range []string{"SessionsTable", "LakeBucket"} {
				if r := tp.resources[keep]; r["DeletionPolicy"] != "Retain" || r["UpdateReplacePolicy"] != "Retain" {
					t.Errorf("%s: DeletionPolicy %v, UpdateReplacePolicy %v; want Retain for both", keep, r["DeletionPolicy"], r["UpdateReplacePolicy"])
				}
			}
			if attrs := fmt.Sprint(tp.props(t, "LoadBalancer")["LoadBalancerAttributes"]); !strings.Contains(attrs, "Key:deletion_protection.enabled Value:true") {
				t.Errorf("the ALB has no deletion protection: %s", attrs)
			}
			topics := tp.resourcesOfType("AWS::SNS::Topic")
			if len(topics) != 1 || fmt.Sprint(tp.props(t, topics[0])["Subscription"]) != fmt.Sprint([]any{map[string]any{"Protocol": "email", "Endpoint": testAlarmEmail}}) {
				t.Fatalf("topics %v, want one of the stack's own mailing AlarmEmail", topics)
			}
			scaling := func(action string) bool {
				typ := fmt.Sprint(tp.resources[action]["Type"])
				return typ == "AWS::ApplicationAutoScaling::ScalingPolicy" || typ == "AWS::AutoScaling::ScalingPolicy"
			}
			watched := map[string][]alarmMetric{}
			for _, a := range tp.resourcesOfType("AWS::CloudWatch::Alarm") {
				p := tp.props(t, a)
				actions := asStrings(p["AlarmActions"])
				if !slices.Contains(actions, topics[0]) && !(len(actions) > 0 && !slices.ContainsFunc(actions, func(s string) bool { return !scaling(s) })) {
					t.Errorf("%s notifies %v, not %s (only scaling triggers may leave it out)", a, actions, topics[0])
				}
				for _, m := range alarmMetrics(p) {
					watched[m.Namespace+" "+m.Name] = append(watched[m.Namespace+" "+m.Name], m)
				}
			}
			throttled := map[string]bool{}
			for _, kind := range []string{"Read", "Write"} {
				for _, m := range watched["AWS/DynamoDB "+kind+"ThrottleEvents"] {
					throttled[kind+" "+m.Dimensions["TableName"]] = true
				}
			}
			for _, table := range tp.resourcesOfType("AWS::DynamoDB::Table") {
				for _, kind := range []string{"Read", "Write"} {
					if !throttled[kind+" "+tp.name(t, table)] {
						t.Errorf("no alarm on %sThrottleEvents of %s", kind, table)
					}
				}
			}
			metricsIDs := map[string]bool{}
			for _, c := range asSlice(tp.props(t, "LakeBucket")["MetricsConfigurations"]) {
				metricsIDs[fmt.Sprint(c.(map[string]any)["Id"])] = true
			}
			lake := false
			for _, m := range watched["AWS/S3 5xxErrors"] {
				lake = lake || (m.Dimensions["BucketName"] == tp.name(t, "LakeBucket") && metricsIDs[m.Dimensions["FilterId"]])
			}
			if !lake {
				t.Error("no alarm on the lake bucket's 5xxErrors request metric (the archive's writes)")
			}
			for _, want := range []string{"AWS/ApplicationELB HTTPCode_ELB_5XX_Count", "AWS/ApplicationELB HTTPCode_Target_5XX_Count"} {
				if len(watched[want]) == 0 {
					t.Errorf("no alarm on %s", want)
				}
			}
			age := watched["AWS/Kinesis GetRecords.IteratorAgeMilliseconds"]
			if len(age) == 0 || age[0].Dimensions["StreamName"] != tp.name(t, "InputStream") {
				t.Errorf("no alarm on the input stream's iterator age: %v", age)
			}
		})
	}
}

// checkSystemdOperations: on ec2-systemd the workers' JSON logs reach CloudWatch Logs (a file per unit the
// agent ships, trimmed by logrotate), a timer checks each unit's /healthz and restarts it after three
// failures (deploy/ec2's health units and script, installed verbatim), and a new launch template version
// (a new BinaryUrl) rolls through the group one instance at a time, each signalling once both workers
// are healthy.
func checkSystemdOperations(t *testing.T, tp *template, userData string) {
	t.Helper()
	for _, f := range []string{"clickfleet-health", "clickfleet-health@.service", "clickfleet-health@.timer"} {
		b, err := os.ReadFile("../../deploy/ec2/" + f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(userData, string(b)) {
			t.Errorf("the user-data does not install deploy/ec2/%s as it is", f)
		}
		if strings.HasSuffix(f, ".service") || strings.HasSuffix(f, ".timer") {
			verifyUnit(t, "../../deploy/ec2/"+f, bytes.ReplaceAll(b, []byte("/usr/local/libexec/clickfleet-health"), []byte("/bin/true")))
		} else if out, err := exec.Command("sh", "-n", "../../deploy/ec2/"+f).CombinedOutput(); err != nil {
			t.Errorf("deploy/ec2/%s does not parse: %v\n%s", f, err, out)
		}
	}
	for _, name := range []string{"consume", "archive"} {
		u := unitFile(t, "../../deploy/ec2/clickfleet-"+name+".service")
		logFile, ok := strings.CutPrefix(u["Service"]["StandardError"][0], "append:")
		if !ok || !strings.Contains(userData, `"file_path": "`+logFile+`"`) {
			t.Errorf("clickfleet-%s's logs (StandardError=%s) are not a file the CloudWatch agent ships", name, u["Service"]["StandardError"][0])
		}
		if !strings.Contains(userData, "clickfleet-health@"+name+".timer") {
			t.Errorf("the user-data does not enable clickfleet-health@%s.timer", name)
		}
	}
	if !strings.Contains(userData, "/etc/logrotate.d/clickfleet") {
		t.Error("the user-data installs no logrotate rule for /var/log/clickfleet")
	}
	roll, _ := lookupPath(tp.resources["AutoScalingGroup"], "UpdatePolicy.AutoScalingRollingUpdate").(map[string]any)
	if roll == nil || tp.eval(t, roll["WaitOnResourceSignals"]) != "true" || fmt.Sprint(roll["MaxBatchSize"]) != "1" {
		t.Errorf("the group's UpdatePolicy %v: want a rolling update, one instance at a time, waiting for signals", roll)
	}
	if !strings.Contains(userData, "cfn-signal") || !strings.Contains(userData, "--resource AutoScalingGroup") {
		t.Error("the user-data sends no cfn-signal for the rolling update")
	}
}

// ReadMode efo makes one stream consumer per reading application on the input stream, named after its
// lease table (the --efo-consumer-name default), and runs consume and archive — in containers and under
// systemd — with CLICKFLEET_READ_MODE=efo; polling makes none and runs them with polling.
func TestTemplateReadMode(t *testing.T) {
	for _, mode := range []string{"polling", "efo"} {
		for _, v := range []int{0, 3} { // fargate, ec2-systemd
			t.Run(mode+"/"+templateVariants[v].name, func(t *testing.T) {
				params := map[string]string{"ReadMode": mode}
				for k, val := range templateVariants[v].params {
					params[k] = val
				}
				tp := loadTemplate(t, params)
				want := map[string]string{}
				if mode == "efo" {
					want[tp.name(t, "LeaseTable")], want[tp.name(t, "ArchiveLeaseTable")] = "consume", "archive"
				}
				got := map[string]string{}
				for _, c := range tp.resourcesOfType("AWS::Kinesis::StreamConsumer") {
					p := tp.props(t, c)
					if arn := tp.getAtt(t, "InputStream", "Arn"); p["StreamARN"] != arn {
						t.Errorf("%s reads %v, want the input stream %v", c, p["StreamARN"], arn)
					}
					got[fmt.Sprint(p["ConsumerName"])] = c
				}
				if len(got) != len(want) {
					t.Errorf("stream consumers %v, want one named after each of %v", got, want)
				}
				for name, app := range want {
					if got[name] == "" {
						t.Errorf("no stream consumer named %s (%s's lease table)", name, app)
					}
				}
				checkReadModeEnv(t, tp, mode, v == 3)
			})
		}
	}
}

// checkReadModeEnv checks consume's and archive's CLICKFLEET_READ_MODE (and, efo, their
// CLICKFLEET_EFO_CONSUMER_NAME) in the task definitions, or in the user-data's environment files.
func checkReadModeEnv(t *testing.T, tp *template, mode string, systemd bool) {
	t.Helper()
	tables := map[string]string{"consume": tp.name(t, "LeaseTable"), "archive": tp.name(t, "ArchiveLeaseTable")}
	if systemd {
		lt := tp.props(t, "LaunchTemplate")["LaunchTemplateData"].(map[string]any)
		userData := fmt.Sprint(lt["UserData"])
		for app, table := range tables {
			file := regexp.MustCompile(`(?s)cat > /etc/clickfleet/` + app + `\.env <<'ENV'\n(.*?)\nENV\n`).FindStringSubmatch(userData)
			if file == nil {
				t.Fatalf("the user-data writes no /etc/clickfleet/%s.env", app)
			}
			if !strings.Contains(file[1], "CLICKFLEET_LEASE_TABLE="+table) || !strings.Contains(file[1], "CLICKFLEET_READ_MODE="+mode+"\n") {
				t.Errorf("/etc/clickfleet/%s.env lacks CLICKFLEET_READ_MODE=%s:\n%s", app, mode, file[1])
			}
		}
		return
	}
	seen := 0
	for _, c := range tp.containers(t) {
		table, ok := tables[c.Command[0]]
		if !ok {
			continue
		}
		seen++
		if got := c.Environment["CLICKFLEET_READ_MODE"]; got != mode {
			t.Errorf("%s: CLICKFLEET_READ_MODE=%q, want %s", c.TaskDefinition, got, mode)
		}
		name, set := c.Environment["CLICKFLEET_EFO_CONSUMER_NAME"]
		if mode == "efo" && name != table || mode != "efo" && set {
			t.Errorf("%s: CLICKFLEET_EFO_CONSUMER_NAME=%q (set: %v) with ReadMode %s, want the lease table's name %s in efo only", c.TaskDefinition, name, set, mode, table)
		}
	}
	if seen != 2 {
		t.Errorf("%d consume and archive containers, want 2", seen)
	}
}

// The read-throttle alarm is on the share of GetRecords calls throttled, sustained over 15 minutes, not on
// one throttled call: polling's budget allows an occasional one (the template's comment has the
// arithmetic).
func TestTemplateReadThrottleAlarmToleratesPolling(t *testing.T) {
	p := loadTemplate(t, templateVariants[0].params).props(t, "ReadThroughputExceededAlarm")
	if p["MetricName"] != "ReadProvisionedThroughputExceeded" || p["Statistic"] != "Average" {
		t.Fatalf("ReadThroughputExceededAlarm: %v of %v, want the Average (share of calls throttled) of ReadProvisionedThroughputExceeded", p["Statistic"], p["MetricName"])
	}
	threshold, _ := strconv.ParseFloat(fmt.Sprint(p["Threshold"]), 64)
	period, _ := strconv.Atoi(fmt.Sprint(p["Period"]))
	periods, _ := strconv.Atoi(fmt.Sprint(p["DatapointsToAlarm"]))
	if threshold < 0.05 || threshold >= 1 {
		t.Errorf("threshold %v: want a share of calls, at least 5%% and below all", p["Threshold"])
	}
	if period*periods < 900 {
		t.Errorf("alarms after %d s of throttling (%d × %d s), want at least 15 minutes sustained", period*periods, periods, period)
	}
}
