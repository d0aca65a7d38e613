//go:build cgo

package main

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clickfleet/clickfleet/lake/reconcile"
)

// reconcileNeeds is what clickfleet reconcile calls (TestTaskRolesAreTheCallsTheCodeMakes records it):
// per action, the resources, written as the template model evaluates them for the default names.
func reconcileNeeds(t *testing.T, tp *template) map[string][]string {
	bucket := "arn:aws:s3:::" + tp.name(t, "LakeBucket")
	return map[string][]string{
		"dynamodb:Scan": {fmt.Sprintf("arn:aws:dynamodb:%s:%s:table/%s", fakeRegion, fakeAccount, tp.name(t, "SessionsTable"))},
		"s3:ListBucket": {bucket},
		"s3:GetObject":  {bucket + "/events/*"},
		"s3:PutObject":  {bucket + "/reconcile/*"},
	}
}

// The daily reconciliation: one task runs clickfleet reconcile over the previous UTC day against the
// stack's sessions table and lake, with a role holding only what reconcile calls and a log group of its
// own; EventBridge Scheduler starts it on ReconcileSchedule (daily by default, none when empty) in the
// private subnets, through a role that may run that task and pass its two roles only; a metric filter
// on its log counts the verdict line reconcile prints when the sides differ, and an alarm on that
// count notifies the stack's topic.
func TestTemplateScheduledReconcile(t *testing.T) {
	for _, v := range append(templateVariants, struct {
		name   string
		params map[string]string
	}{"unscheduled", withTLS(map[string]string{"ReconcileSchedule": ""})}) {
		t.Run(v.name, func(t *testing.T) {
			tp := loadTemplate(t, v.params)
			var task *container
			for _, c := range tp.containers(t) {
				if c.Command[0] == "reconcile" {
					task = &c
				}
			}
			if task == nil {
				t.Fatal("no task runs clickfleet reconcile")
			}
			checkReconcileCommand(t, tp, *task)
			checkReconcileRole(t, tp, task.TaskRole)
			logs := checkReconcileSchedule(t, tp, task.TaskDefinition, task.TaskRole, tp.params["ReconcileSchedule"] != "")
			checkReconcileAlarm(t, tp, logs)
		})
	}
}

// checkReconcileCommand: the stack's sessions table and lake, the previous UTC day.
func checkReconcileCommand(t *testing.T, tp *template, c container) {
	t.Helper()
	cmd := cliCommand(t, c.Command)
	applySettings(t, cmd, c.Environment)
	if got, want := cmd.Flag("sessions-table").Value.String(), tp.name(t, "SessionsTable"); got != want {
		t.Errorf("reconcile --sessions-table %q, want the stack's sessions table %q", got, want)
	}
	if got, want := cmd.Flag("lake-url").Value.String(), "s3://"+tp.name(t, "LakeBucket")+"/"; got != want {
		t.Errorf("reconcile --lake-url %q, want the stack's lake %q", got, want)
	}
	now := time.Date(2026, 12, 7, 1, 30, 0, 0, time.UTC) // the default schedule's time
	from, errF := parseTimeFlagAt("from", cmd.Flag("from").Value.String(), now)
	to, errT := parseTimeFlagAt("to", cmd.Flag("to").Value.String(), now)
	if want := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC); errF != nil || errT != nil || !from.Equal(want) || !to.Equal(want.Add(24*time.Hour)) {
		t.Errorf("reconcile run at %s covers [%s, %s) (%v, %v), want the previous UTC day [%s, %s)", now, from, to, errF, errT, want, want.Add(24*time.Hour))
	}
	if f := cmd.Flag("reconcile-key"); f.Value.String() != reconcile.ResultKey {
		t.Errorf("reconcile --reconcile-key %q, want %q (the dashboard's)", f.Value, reconcile.ResultKey)
	}
}

// checkReconcileRole: exactly reconcileNeeds, from the stack's own policies.
func checkReconcileRole(t *testing.T, tp *template, role string) {
	t.Helper()
	if role == "" {
		t.Fatal("the reconcile task has no task role")
	}
	for _, c := range tp.containers(t) {
		if c.TaskRole == role && c.Command[0] != "reconcile" {
			t.Errorf("the reconcile task's role %s is also %s's", role, c.Command[0])
		}
	}
	stmts, awsManaged := tp.roleStatements(t, role)
	if len(awsManaged) > 0 {
		t.Errorf("%s has AWS-managed policies %v", role, awsManaged)
	}
	got := map[string][]string{}
	for _, s := range stmts {
		for _, a := range s.Actions {
			got[a] = append(got[a], s.Resources...)
		}
	}
	for a := range got {
		slices.Sort(got[a])
	}
	if want := reconcileNeeds(t, tp); !reflect.DeepEqual(got, want) {
		t.Errorf("%s allows %v, want exactly reconcile's calls %v", role, got, want)
	}
}

// checkReconcileSchedule checks the schedule (or its absence) and returns the task's log group.
func checkReconcileSchedule(t *testing.T, tp *template, taskDef, taskRole string, scheduled bool) string {
	t.Helper()
	var logs string
	for _, cd := range asSlice(tp.props(t, taskDef)["ContainerDefinitions"]) {
		logs = fmt.Sprint(cd.(map[string]any)["LogConfiguration"].(map[string]any)["Options"].(map[string]any)["awslogs-group"])
	}
	if tp.resources[logs]["Type"] != "AWS::Logs::LogGroup" {
		t.Fatalf("the reconcile task logs to %q, not a log group of the stack", logs)
	}
	for _, c := range tp.containers(t) {
		if c.Command[0] != "reconcile" && strings.Contains(fmt.Sprint(tp.props(t, c.TaskDefinition)["ContainerDefinitions"]), "awslogs-group:"+logs+" ") {
			t.Errorf("%s shares the reconcile task's log group %s", c.TaskDefinition, logs)
		}
	}
	schedules := tp.resourcesOfType("AWS::Scheduler::Schedule")
	if !scheduled {
		if len(schedules) > 0 {
			t.Errorf("ReconcileSchedule empty, yet schedules %v", schedules)
		}
		return logs
	}
	if len(schedules) != 1 {
		t.Fatalf("schedules %v, want one", schedules)
	}
	p := tp.props(t, schedules[0])
	target := p["Target"].(map[string]any)
	ecs := target["EcsParameters"].(map[string]any)
	if p["ScheduleExpression"] != "cron(30 1 * * ? *)" || p["ScheduleExpressionTimezone"] != "UTC" {
		t.Errorf("schedule %v in %v, want the default daily cron(30 1 * * ? *) in UTC", p["ScheduleExpression"], p["ScheduleExpressionTimezone"])
	}
	if logicalID(target["Arn"]) != "Cluster" || ecs["TaskDefinitionArn"] != taskDef || fmt.Sprint(ecs["TaskCount"]) != "1" {
		t.Errorf("the schedule runs %v ×%v on %v, want %s once on the stack's cluster", ecs["TaskDefinitionArn"], ecs["TaskCount"], target["Arn"], taskDef)
	}
	net := ecs["NetworkConfiguration"].(map[string]any)["AwsvpcConfiguration"].(map[string]any)
	if subnets := asStrings(net["Subnets"]); net["AssignPublicIp"] != "DISABLED" || !reflect.DeepEqual(subnets, []string{"PrivateSubnetA", "PrivateSubnetB"}) {
		t.Errorf("the reconcile task's network %v, want the private subnets without a public address", net)
	}
	role := logicalID(target["RoleArn"])
	stmts, awsManaged := tp.roleStatements(t, role)
	var got []string
	for _, s := range stmts {
		for _, a := range s.Actions {
			for _, r := range s.Resources {
				got = append(got, a+" "+logicalID(r))
			}
		}
	}
	slices.Sort(got)
	want := []string{"ecs:RunTask " + taskDef, "iam:PassRole TaskExecutionRole", "iam:PassRole " + taskRole}
	slices.Sort(want)
	if len(awsManaged) > 0 || !reflect.DeepEqual(got, want) {
		t.Errorf("the scheduler's role %s allows %v (AWS-managed %v), want exactly %v", role, got, awsManaged, want)
	}
	if trust := fmt.Sprint(tp.props(t, role)["AssumeRolePolicyDocument"]); !strings.Contains(trust, "Service:scheduler.amazonaws.com") || !strings.Contains(trust, "aws:SourceAccount:"+fakeAccount) {
		t.Errorf("%s trusts %s, want EventBridge Scheduler of this account only", role, trust)
	}
	return logs
}

// checkReconcileAlarm: a filter on the task's log matching reconcile's DIFFERENT verdict (and not its
// EQUAL one, as printed by lake/reconcile), and an alarm on its metric notifying the stack's topic.
func checkReconcileAlarm(t *testing.T, tp *template, logs string) {
	t.Helper()
	verdict := func(equal bool) string {
		var b bytes.Buffer
		if err := (&reconcile.Result{Equal: equal}).WriteText(&b); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	var metrics []string
	for _, f := range tp.resourcesOfType("AWS::Logs::MetricFilter") {
		p := tp.props(t, f)
		if p["LogGroupName"] != logs {
			continue
		}
		phrase := strings.Trim(fmt.Sprint(p["FilterPattern"]), `"`)
		if !strings.Contains(verdict(false), phrase) || strings.Contains(verdict(true), phrase) {
			t.Errorf("%s matches %q: not the line reconcile prints when the sides differ, only then", f, phrase)
			continue
		}
		for _, m := range asSlice(p["MetricTransformations"]) {
			mt := m.(map[string]any)
			metrics = append(metrics, fmt.Sprint(mt["MetricNamespace"], " ", mt["MetricName"]))
		}
	}
	if len(metrics) == 0 {
		t.Fatalf("no metric filter on %s counts the DIFFERENT verdicts", logs)
	}
	topic := tp.resourcesOfType("AWS::SNS::Topic")
	alarmed := false
	for _, a := range tp.resourcesOfType("AWS::CloudWatch::Alarm") {
		p := tp.props(t, a)
		for _, m := range alarmMetrics(p) {
			if slices.Contains(metrics, m.Namespace+" "+m.Name) && len(topic) == 1 && slices.Contains(asStrings(p["AlarmActions"]), topic[0]) &&
				p["ComparisonOperator"] == "GreaterThanThreshold" && fmt.Sprint(p["Threshold"]) == "0" && p["TreatMissingData"] == "notBreaching" {
				alarmed = true
			}
		}
	}
	if !alarmed {
		t.Errorf("no alarm on %v (> 0, missing data not breaching) notifies the stack's topic %v", metrics, topic)
	}
}
