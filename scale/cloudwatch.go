package scale

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
)

// CloudWatchAPI holds the one CloudWatch method the CloudWatch source uses; *cloudwatch.Client
// implements it.
type CloudWatchAPI interface {
	GetMetricData(ctx context.Context, in *cloudwatch.GetMetricDataInput, opts ...func(*cloudwatch.Options)) (*cloudwatch.GetMetricDataOutput, error)
}

var _ CloudWatchAPI = (*cloudwatch.Client)(nil)

// The stream metrics the CloudWatch source reads (namespace AWS/Kinesis, dimension StreamName).
const (
	CloudWatchNamespace     = "AWS/Kinesis"
	CloudWatchBytesMetric   = "IncomingBytes"
	CloudWatchRecordsMetric = "IncomingRecords"
	CloudWatchDimension     = "StreamName"
	// DefaultCloudWatchDelay is how long after a minute ends its datapoint is trusted to be published.
	DefaultCloudWatchDelay = 2 * time.Minute
)

// CloudWatch is the Source on AWS: the stream-level IncomingBytes and IncomingRecords metrics Kinesis
// publishes every minute, read as one-minute sums with one GetMetricData call (paginated) per Rates, and
// divided by 60 for rates per second. Kinesis publishes no datapoint for a minute without traffic, so a
// minute of the asked range without one counts as zero; the range ends Delay before now (rounded down to
// the minute), so a minute not yet published is never taken for a quiet one.
type CloudWatch struct {
	// API is the CloudWatch client. Required.
	API CloudWatchAPI
	// Stream is the stream's name. Required.
	Stream string
	// Delay: see the type. Default: DefaultCloudWatchDelay.
	Delay time.Duration
}

const cloudWatchPeriod = time.Minute

// Lag is how old the newest sample is at most: Delay plus a period (the range ends on a whole minute).
func (c *CloudWatch) Lag() time.Duration { return c.delay() + cloudWatchPeriod }

func (c *CloudWatch) delay() time.Duration {
	if c.Delay <= 0 {
		return DefaultCloudWatchDelay
	}
	return c.Delay
}

// Rates implements Source.
func (c *CloudWatch) Rates(ctx context.Context, since, now time.Time) ([]Sample, error) {
	in, start, end := c.request(since, now)
	if in == nil {
		return nil, nil
	}
	bytes, records := map[time.Time]float64{}, map[time.Time]float64{}
	for {
		out, err := c.API.GetMetricData(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("CloudWatch %s/%s of stream %s: %w", CloudWatchNamespace, CloudWatchBytesMetric, c.Stream, err)
		}
		for _, r := range out.MetricDataResults {
			var into map[time.Time]float64
			switch aws.ToString(r.Id) {
			case "bytes":
				into = bytes
			case "records":
				into = records
			default:
				continue
			}
			if r.StatusCode == cwtypes.StatusCodeForbidden || r.StatusCode == cwtypes.StatusCodeInternalError {
				return nil, fmt.Errorf("CloudWatch metric %s of stream %s: status %s", aws.ToString(r.Label), c.Stream, r.StatusCode)
			}
			if len(r.Timestamps) != len(r.Values) {
				return nil, errors.New("CloudWatch answered a different number of timestamps and values")
			}
			for i, ts := range r.Timestamps {
				into[ts.UTC().Truncate(cloudWatchPeriod)] += r.Values[i]
			}
		}
		if out.NextToken == nil {
			break
		}
		next := *in
		next.NextToken = out.NextToken
		in = &next
	}
	var samples []Sample
	for t := start; t.Before(end); t = t.Add(cloudWatchPeriod) {
		secs := cloudWatchPeriod.Seconds()
		samples = append(samples, Sample{End: t.Add(cloudWatchPeriod), Period: cloudWatchPeriod,
			BytesPerSecond: bytes[t] / secs, RecordsPerSecond: records[t] / secs})
	}
	return samples, nil
}

// request builds the GetMetricData input for whole minutes from since (rounded down) to now - Delay
// (rounded down); nil when that range is empty.
func (c *CloudWatch) request(since, now time.Time) (*cloudwatch.GetMetricDataInput, time.Time, time.Time) {
	start := since.UTC().Truncate(cloudWatchPeriod)
	end := now.Add(-c.delay()).UTC().Truncate(cloudWatchPeriod)
	if !end.After(start) {
		return nil, start, end
	}
	query := func(id, metric string) cwtypes.MetricDataQuery {
		return cwtypes.MetricDataQuery{Id: aws.String(id), ReturnData: aws.Bool(true), MetricStat: &cwtypes.MetricStat{
			Metric: &cwtypes.Metric{Namespace: aws.String(CloudWatchNamespace), MetricName: aws.String(metric),
				Dimensions: []cwtypes.Dimension{{Name: aws.String(CloudWatchDimension), Value: aws.String(c.Stream)}}},
			Period: aws.Int32(int32(cloudWatchPeriod.Seconds())), Stat: aws.String("Sum"), Unit: unitOf(metric)}}
	}
	return &cloudwatch.GetMetricDataInput{
		StartTime: aws.Time(start), EndTime: aws.Time(end), ScanBy: cwtypes.ScanByTimestampAscending,
		MetricDataQueries: []cwtypes.MetricDataQuery{query("bytes", CloudWatchBytesMetric), query("records", CloudWatchRecordsMetric)},
	}, start, end
}

func unitOf(metric string) cwtypes.StandardUnit {
	if metric == CloudWatchBytesMetric {
		return cwtypes.StandardUnitBytes
	}
	return cwtypes.StandardUnitCount
}
