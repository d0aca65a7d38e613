package lease

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Load is what a worker reports of itself to the leader (Config.Load): the process's CPU and what it read
// from each shard it holds.
type Load struct {
	// CPU is the cores the process used since the previous report (1.5: one and a half cores).
	CPU float64
	// Shards maps each held shard to what was read from it per second since the previous report.
	Shards map[string]ShardLoad
}

// Attribute names of the worker-metrics table (WorkerMetricsTable), one item per live worker.
const (
	attrReportCount = "counter"    // bumped at every report: the leader's sign of life
	attrReportedAt  = "reportedAt" // Unix ms of the report by the worker's clock, for people; never compared
	attrCPU         = "cpu"
	attrLeaving     = "leaving"
	attrShards      = "shards" // shard id → {rps, bps}
	attrRPS         = "rps"
	attrBPS         = "bps"
)

// reporter writes one worker's load reports.
type reporter struct {
	db      DynamoDBAPI
	table   string
	me      string
	clock   Clock
	metrics *metrics
	counter int64
}

// report writes the worker's item: its load, leaving or not, and the next counter.
func (r *reporter) report(ctx context.Context, load Load, leaving bool) error {
	r.counter++
	shards := make(map[string]types.AttributeValue, len(load.Shards))
	for id, s := range load.Shards {
		shards[id] = &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{
			attrRPS: decimal(s.RecordsPerSec), attrBPS: decimal(s.BytesPerSec)}}
	}
	item := map[string]types.AttributeValue{
		attrWorkerID: str(r.me), attrReportCount: num(r.counter), attrReportedAt: num(r.clock.Now().UnixMilli()),
		attrCPU: decimal(load.CPU), attrLeaving: &types.AttributeValueMemberBOOL{Value: leaving},
		attrShards: &types.AttributeValueMemberM{Value: shards},
	}
	_, err := r.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(r.table), Item: item})
	r.metrics.call("report_load", err)
	if err != nil {
		return fmt.Errorf("lease: report the load of worker %s in %s: %w", r.me, r.table, err)
	}
	return nil
}

// remove deletes the worker's item when it stops cleanly.
func (r *reporter) remove(ctx context.Context) error {
	_, err := r.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(r.table),
		Key: map[string]types.AttributeValue{attrWorkerID: str(r.me)}})
	r.metrics.call("remove_load", err)
	if err != nil {
		return fmt.Errorf("lease: remove worker %s from %s: %w", r.me, r.table, err)
	}
	return nil
}

// workerReport is one item of the worker-metrics table.
type workerReport struct {
	id      string
	counter int64
	leaving bool
	load    Load
}

// readReports scans the worker-metrics table (eventually consistent: a stale report only delays a move).
func readReports(ctx context.Context, db DynamoDBAPI, table string, m *metrics) ([]workerReport, error) {
	var (
		out   []workerReport
		start map[string]types.AttributeValue
	)
	for {
		page, err := db.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(table), ExclusiveStartKey: start})
		m.call("scan_loads", err)
		if err != nil {
			return nil, fmt.Errorf("lease: read worker loads in %s: %w", table, err)
		}
		for _, item := range page.Items {
			r, err := decodeReport(item)
			if err != nil {
				return nil, fmt.Errorf("lease: worker loads in %s: %w", table, err)
			}
			out = append(out, r)
		}
		if len(page.LastEvaluatedKey) == 0 {
			return out, nil
		}
		start = page.LastEvaluatedKey
	}
}

func decodeReport(item map[string]types.AttributeValue) (workerReport, error) {
	var r workerReport
	id, ok := item[attrWorkerID].(*types.AttributeValueMemberS)
	if !ok {
		return r, fmt.Errorf("an item without %s", attrWorkerID)
	}
	r.id = id.Value
	r.counter = numberOf(item[attrReportCount])
	if b, ok := item[attrLeaving].(*types.AttributeValueMemberBOOL); ok {
		r.leaving = b.Value
	}
	r.load.CPU = decimalOf(item[attrCPU])
	if m, ok := item[attrShards].(*types.AttributeValueMemberM); ok {
		r.load.Shards = make(map[string]ShardLoad, len(m.Value))
		for shard, v := range m.Value {
			sm, ok := v.(*types.AttributeValueMemberM)
			if !ok {
				continue
			}
			r.load.Shards[shard] = ShardLoad{RecordsPerSec: decimalOf(sm.Value[attrRPS]), BytesPerSec: decimalOf(sm.Value[attrBPS])}
		}
	}
	return r, nil
}

// liveWorkers folds the reports into the leader's observations of the workers' counters (prev is not
// modified) and returns the live workers: not leaving, and whose counter changed within the failover time
// by the leader's clock (a worker seen for the first time counts as live).
func liveWorkers(prev map[string]Observation, reports []workerReport, now time.Time, failover time.Duration) ([]WorkerLoad, map[string]Observation) {
	obs := make(map[string]Observation, len(reports))
	var live []WorkerLoad
	for _, r := range reports {
		o, seen := prev[r.id]
		if !seen || o.Counter != r.counter {
			o = Observation{Counter: r.counter, SeenAt: now}
		}
		obs[r.id] = o
		if r.leaving || now.Sub(o.SeenAt) >= failover {
			continue
		}
		live = append(live, WorkerLoad{Worker: r.id, CPU: r.load.CPU, Shards: r.load.Shards})
	}
	slices.SortFunc(live, func(a, b WorkerLoad) int { return strings.Compare(a.Worker, b.Worker) })
	return live, obs
}

func decimal(f float64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatFloat(f, 'f', 3, 64)}
}

func decimalOf(av types.AttributeValue) float64 {
	if n, ok := av.(*types.AttributeValueMemberN); ok {
		f, err := strconv.ParseFloat(n.Value, 64)
		if err == nil {
			return f
		}
	}
	return 0
}

func numberOf(av types.AttributeValue) int64 {
	if n, ok := av.(*types.AttributeValueMemberN); ok {
		i, err := strconv.ParseInt(n.Value, 10, 64)
		if err == nil {
			return i
		}
	}
	return 0
}
