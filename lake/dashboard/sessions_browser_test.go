package dashboard_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/clickfleet/clickfleet/internal/provision"
	"github.com/clickfleet/clickfleet/internal/testenv"
	"github.com/clickfleet/clickfleet/lake/reconcile"
)

// sessionsTable creates a sessions table for the test and deletes it when the test ends.
func sessionsTable(t *testing.T, ddb *dynamodb.Client) string {
	t.Helper()
	name := testenv.Name(t, "sessions")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := provision.EnsureSessionsTable(ctx, ddb, name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = ddb.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(name)})
	})
	return name
}

// metric returns the sum of a metric's series on a worker's /metrics (those whose labels include match,
// e.g. `kind="events"`), and whether the worker answered and has it.
func metric(url, name, match string) (float64, bool) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	var sum float64
	found := false
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		if match != "" && !strings.Contains(rest, match) {
			continue
		}
		f := strings.Fields(rest)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			sum, found = sum+v, true
		}
	}
	return sum, found
}

// reconciled is one run of `clickfleet reconcile`: its exit status, its output and, with --format json,
// its result.
type reconciled struct {
	code   int
	out    string
	errOut string
	res    *reconcile.Result
}

// runReconcile runs `clickfleet reconcile` over the lake and the table; json asks for --format json.
func runReconcile(t *testing.T, bin, lakeURL, table, cacheDir string, json bool) reconciled {
	t.Helper()
	args := []string{"reconcile", "--lake-url", lakeURL, "--sessions-table", table, "--cache-dir", cacheDir, "--log-level", "warn"}
	if json {
		args = append(args, "--format", "json")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	r := reconciled{out: out.String(), errOut: errOut.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	default:
		t.Fatalf("clickfleet %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
	}
	if json && (r.code == 0 || r.code == 1) {
		r.res = decodeResult(t, out.Bytes(), errOut.String())
	}
	return r
}

func decodeResult(t *testing.T, b []byte, errOut string) *reconcile.Result {
	t.Helper()
	var res reconcile.Result
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("reconcile --format json: %v\n%s\n%s", err, b, errOut)
	}
	return &res
}

// mustEqual runs reconcile and fails unless it exits 0 with every compared session equal.
func mustEqual(t *testing.T, what, bin, lakeURL, table, cacheDir string) *reconcile.Result {
	t.Helper()
	r := runReconcile(t, bin, lakeURL, table, cacheDir, true)
	if r.code != 0 || r.res == nil || !r.res.Equal {
		t.Fatalf("%s: reconcile exited %d, want 0 (equal)\n%s\n%s", what, r.code, r.out, r.errOut)
	}
	s := r.res.Summary
	if s.LakeSessions == 0 || s.Equal != s.LakeSessions || s.Missing+s.Extra+s.Differing != 0 || s.TableRows != s.LakeSessions+countRows(r.res.Open) {
		t.Fatalf("%s: exit 0 with summary %+v", what, s)
	}
	t.Logf("%s: reconcile equal: %+v", what, s)
	return r.res
}

func countRows(open []reconcile.OpenSession) int {
	n := 0
	for _, o := range open {
		if o.Table != nil {
			n++
		}
	}
	return n
}

// mustDiffer runs reconcile (text) and fails unless it exits 1 and names each of want.
func mustDiffer(t *testing.T, what, bin, lakeURL, table, cacheDir string, want ...string) {
	t.Helper()
	r := runReconcile(t, bin, lakeURL, table, cacheDir, false)
	if r.code != 1 {
		t.Fatalf("%s: reconcile exited %d, want 1\n%s\n%s", what, r.code, r.out, r.errOut)
	}
	for _, w := range want {
		if !strings.Contains(r.out, w) {
			t.Errorf("%s: the output does not say %q:\n%s", what, w, r.out)
		}
	}
}

// tableItem reads a row of the sessions table.
func tableItem(t *testing.T, ddb *dynamodb.Client, table, id string) map[string]dtypes.AttributeValue {
	t.Helper()
	out, err := ddb.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true),
		Key: map[string]dtypes.AttributeValue{"session_id": &dtypes.AttributeValueMemberS{Value: id}}})
	if err != nil || out.Item == nil {
		t.Fatalf("row %s: %v (found %v)", id, err, out != nil && out.Item != nil)
	}
	return out.Item
}

func putItem(t *testing.T, ddb *dynamodb.Client, table string, item map[string]dtypes.AttributeValue) {
	t.Helper()
	if _, err := ddb.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(table), Item: item}); err != nil {
		t.Fatal(err)
	}
}

func deleteItem(t *testing.T, ddb *dynamodb.Client, table, id string) {
	t.Helper()
	if _, err := ddb.DeleteItem(context.Background(), &dynamodb.DeleteItemInput{TableName: aws.String(table),
		Key: map[string]dtypes.AttributeValue{"session_id": &dtypes.AttributeValueMemberS{Value: id}}}); err != nil {
		t.Fatal(err)
	}
}

// eventsInTable sums event_count over every row of the table.
func eventsInTable(t *testing.T, ddb *dynamodb.Client, table string) (events int64, rows int) {
	t.Helper()
	p := dynamodb.NewScanPaginator(ddb, &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Items {
			if n, ok := it["event_count"].(*dtypes.AttributeValueMemberN); ok {
				v, _ := strconv.ParseInt(n.Value, 10, 64)
				events += v
			}
			rows++
		}
	}
	return events, rows
}

// pageReconcile reads the reconciliation panel: its verdict, the summary line and the differences'
// session ids by kind.
type pageReconcile struct {
	Verdict string              `json:"verdict"`
	Summary string              `json:"summary"`
	Diffs   map[string][]string `json:"diffs"`
	Status  string              `json:"status"`
	At      string              `json:"at"`
}

func readReconcilePanel(t *testing.T, ctx context.Context) pageReconcile {
	t.Helper()
	var p pageReconcile
	eval(t, ctx, `(() => { const v = document.querySelector("#reconcile [data-verdict]"), diffs = {};
		for (const tr of document.querySelectorAll("#reconcile-differences tr[data-kind]")) (diffs[tr.dataset.kind] = diffs[tr.dataset.kind] || []).push(tr.dataset.session);
		const a = (window.dashboard.reconcile || {body: {}}).body;
		return {verdict: v ? v.dataset.verdict : "", summary: (document.querySelector("#reconcile-summary") || {}).textContent || "", diffs,
			status: document.querySelector('[data-status="reconcile"]').dataset.kind || "", at: a && a.result ? a.result.at : ""}; })()`, &p)
	return p
}

// waitReconcilePanel waits until the page shows the stored result res: its verdict and its counts.
func waitReconcilePanel(t *testing.T, ctx context.Context, res *reconcile.Result) pageReconcile {
	t.Helper()
	s := res.Summary
	verdict := "different"
	if res.Equal {
		verdict = "equal"
	}
	wantSummary := fmt.Sprintf("%d sessions compared: %d equal, %d missing from the table, %d extra in the table, %d differing · %d open",
		s.LakeSessions, s.Equal, s.Missing, s.Extra, s.Differing, s.OpenSessions)
	var p pageReconcile
	testenv.WaitForState(t, "the page to show the last reconciliation ("+verdict+")", 60*time.Second, func() (bool, string) {
		p = readReconcilePanel(t, ctx)
		got, _ := time.Parse(time.RFC3339Nano, p.At)
		return p.Verdict == verdict && got.Equal(res.At) && strings.Contains(p.Summary, wantSummary), fmt.Sprintf("%+v, want %q", p, wantSummary)
	})
	return p
}
