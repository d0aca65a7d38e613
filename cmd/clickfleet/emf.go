package main

import (
	"io"
	"time"

	"github.com/spf13/pflag"

	"github.com/clickfleet/clickfleet/consumer"
	"github.com/clickfleet/clickfleet/internal/emf"
)

// The CloudWatch names of the workers' scaling metrics; deploy/aws's alarms and scaling policies use them.
const (
	emfNamespace       = "clickfleet"
	emfMetricLag       = "MaxMillisBehindLatest"
	emfMetricRecords   = "RecordsPerSecond"
	emfMetricLeases    = "LeasesHeld"
	emfMetricShards    = "OpenShards"
	emfDimStream       = "stream"
	emfDimApplication  = "application"
	defaultEMFInterval = time.Minute
)

// addEMFFlag adds --emf-interval to a worker command.
func addEMFFlag(f *pflag.FlagSet, interval *time.Duration) {
	f.DurationVar(interval, "emf-interval", defaultEMFInterval, "how often a CloudWatch Embedded Metric Format line "+
		"(namespace clickfleet: MaxMillisBehindLatest, RecordsPerSecond, LeasesHeld; dimensions stream and application, "+
		"the lease table) is written to standard output, for autoscaling on ECS/EC2 without PutMetricData calls (0: none)")
}

// emfComponent returns the component that reports w's lag, throughput and leases every interval on out;
// ok is false for interval 0.
func emfComponent(w *consumer.Worker, stream, application string, interval time.Duration, out io.Writer) (component, bool) {
	if interval <= 0 {
		return component{}, false
	}
	last := w.RecordsProcessed()
	r := &emf.Reporter{Namespace: emfNamespace, Interval: interval, Out: out,
		Dimensions: map[string]string{emfDimStream: stream, emfDimApplication: application},
		Collect: func(elapsed time.Duration) []emf.Metric {
			n := w.RecordsProcessed()
			rate := 0.0
			if s := elapsed.Seconds(); s > 0 {
				rate = float64(n-last) / s
			}
			last = n
			return []emf.Metric{
				{Name: emfMetricLag, Unit: emf.Milliseconds, Value: float64(w.Lag().MaxMillisBehindLatest)},
				{Name: emfMetricRecords, Unit: emf.CountPerSecond, Value: rate},
				{Name: emfMetricLeases, Unit: emf.Count, Value: float64(len(w.Holding()))},
			}
		}}
	return component{name: "emf reporter", run: r.Run}, true
}

// scaleEMFComponent returns the component that reports the stream's open shards (scale.Scaler.OpenShards,
// while this instance leads) every interval on out, dimension stream: the cap of the worker services'
// task counts in deploy/aws. ok is false for interval 0.
func scaleEMFComponent(openShards func() int, stream string, interval time.Duration, out io.Writer) (component, bool) {
	if interval <= 0 {
		return component{}, false
	}
	r := &emf.Reporter{Namespace: emfNamespace, Interval: interval, Out: out, Dimensions: map[string]string{emfDimStream: stream},
		Collect: func(time.Duration) []emf.Metric {
			n := openShards()
			if n == 0 {
				return nil // not leading, or not evaluated yet: the leader reports
			}
			return []emf.Metric{{Name: emfMetricShards, Unit: emf.Count, Value: float64(n)}}
		}}
	return component{name: "emf reporter", run: r.Run}, true
}
