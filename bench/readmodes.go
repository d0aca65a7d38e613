package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/clickfleet/clickfleet/internal/provision"
)

// The read modes ReadModes compares.
const (
	// ReadOldPacing is polling at the pace before the polling budget: GetRecords calls on a shard
	// 200ms apart (consumer.Config.MinCallInterval's default until it became --poll-interval, 500ms).
	// Its throttles are handled the budget's way (not retried inside the SDK call; a backoff capped at
	// 2s), so it is today's code at the old pace, not the old code.
	ReadOldPacing = "polling-200ms"
	ReadPolling   = "polling" // polling at the defaults: the budget
	ReadEFO       = "efo"     // enhanced fan-out
)

// readModeArgs are the flags each read mode gives both applications' workers.
func readModeArgs(mode, efoEndpoint string) []string {
	switch mode {
	case ReadOldPacing:
		return []string{"--read-mode", "polling", "--poll-interval", "200ms"}
	case ReadEFO:
		return []string{"--read-mode", "efo", "--efo-endpoint", efoEndpoint}
	}
	return []string{"--read-mode", "polling"}
}

// ReadModesConfig describes a comparison of read modes: for each mode in turn, a steady Load with one
// consume worker (the actors processor) and one archive worker reading the same fresh stream in that mode.
type ReadModesConfig struct {
	// Load is the steady load each mode runs (its Scenario and Archive are set: steady, on; Workers
	// defaults to 1). Its LimitsURL should be the stack's limits layer: the modes are meant to be
	// compared within Kinesis' limits (`clickfleet bench readmodes` requires it).
	Load LoadConfig
	// Modes are run in this order. Default: ReadOldPacing, ReadPolling, ReadEFO.
	Modes []string
	// EFOEndpoint is the workers' --efo-endpoint (the local stack's fan-out proxy). Required for ReadEFO.
	EFOEndpoint string
}

// ReadModeResult is one mode's run.
type ReadModeResult struct {
	Mode string   `json:"mode"`
	Args []string `json:"worker_args"`
	// LoadAverage is the machine's 1-minute load average when the mode's run started and when it ended.
	LoadAverage [2]float64 `json:"load_average_1m"`
	Result      LoadResult `json:"result"`
}

func (c *ReadModesConfig) defaults() error {
	if len(c.Modes) == 0 {
		c.Modes = []string{ReadOldPacing, ReadPolling, ReadEFO}
	}
	for _, m := range c.Modes {
		switch m {
		case ReadOldPacing, ReadPolling:
		case ReadEFO:
			if c.EFOEndpoint == "" {
				return errors.New("readmodes: efo needs EFOEndpoint (the stack's fan-out proxy)")
			}
		default:
			return fmt.Errorf("readmodes: mode must be %s, %s or %s, not %q", ReadOldPacing, ReadPolling, ReadEFO, m)
		}
	}
	c.Load.Scenario, c.Load.Archive = Steady, true
	setDefault(&c.Load.Workers, 1)
	return nil
}

// ReadModes runs the steady load once per mode, one after the other, each on its own stream, and returns
// what each measured; it stops at the first run that fails.
func ReadModes(ctx context.Context, kin KinesisAPI, ddb DynamoDBAPI, cfg ReadModesConfig) ([]ReadModeResult, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	var out []ReadModeResult
	for _, m := range cfg.Modes {
		lc := cfg.Load
		args := readModeArgs(m, cfg.EFOEndpoint)
		lc.WorkerArgs = append(slices.Clone(lc.WorkerArgs), args...)
		lc.ArchiveArgs = append(slices.Clone(lc.ArchiveArgs), args...)
		rm := ReadModeResult{Mode: m, Args: args}
		rm.LoadAverage[0] = loadAverage()
		res, err := Load(ctx, kin, ddb, lc)
		rm.LoadAverage[1], rm.Result = loadAverage(), res
		out = append(out, rm)
		if err != nil {
			return out, fmt.Errorf("readmodes: %s: %w", m, err)
		}
	}
	return out, nil
}

// loadAverage is the machine's 1-minute load average (0 where /proc/loadavg is not).
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f, _ := strconv.ParseFloat(strings.Fields(string(b) + " 0")[0], 64)
	return f
}

// WriteReadModes prints the modes side by side: Kinesis calls, throttles and latencies.
func WriteReadModes(w io.Writer, rs []ReadModeResult) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\tGetRecords/s/shard (consume+archive)\tthrottled/min (layer)\tworkers saw\tsubscribes/min/shard\tput→last access p50/p99 ms\tput→archived p50/p99 ms\tproduced/s\tdrain s\tload avg\t")
	for _, rm := range rs {
		r := rm.Result
		f := ReadFigures{}
		if r.Reads != nil {
			f = *r.Reads
		}
		fmt.Fprintf(tw, "%s\t%.2f (%.2f+%.2f)\t%.1f\t%.0f\t%.1f\t%.0f / %.0f\t%.0f / %.0f\t%.0f\t%.1f\t%.1f→%.1f\t\n", rm.Mode,
			f.Calls, f.ConsumeCalls, f.ArchiveCalls, f.ThrottledPerMinute, f.WorkerThrottled, f.Subscribes,
			r.Latency.P50, r.Latency.P99, r.ArchiveLatency.P50, r.ArchiveLatency.P99, r.ProducedRate, r.DrainSeconds,
			rm.LoadAverage[0], rm.LoadAverage[1])
	}
	return tw.Flush()
}

// setUpArchive creates the archive's lease table and bucket and configures its worker; the release
// deletes them.
func (r *loadRun) setUpArchive(ctx context.Context) error {
	if err := r.stack.leaseTable(ctx, r.archiveLeases()); err != nil {
		return err
	}
	if _, err := provision.EnsureBucket(ctx, r.cfg.S3, r.id); err != nil {
		return err
	}
	r.stack.onRelease(func(ctx context.Context) { deleteBucket(ctx, r.cfg.S3, r.id) })
	args := []string{"--stream", r.id, "--lease-table", r.archiveLeases(), "--lake-url", "s3://" + r.id + "/", "--s3-path-style", "true",
		"--redis-url", r.cfg.RedisURL, "--key-prefix", r.prefix, "--geo-mmdb", "",
		"--buffer-interval", r.cfg.ArchiveInterval.String(), "--buffer-interval-unchecked"}
	r.archive = &Fleet{Binary: r.cfg.Binary, Command: "archive", LogDir: r.cfg.LogDir, Args: append(args, r.cfg.ArchiveArgs...)}
	r.stack.stopFleets(r.archive)
	return nil
}

// archiveLeases is the archive's lease table; "" without one.
func (r *loadRun) archiveLeases() string {
	if !r.cfg.Archive {
		return ""
	}
	return r.id + "-archive"
}

// archived returns an error until the archive worker has stored every record produced and checkpointed
// every probe (nil without an archive).
func (r *loadRun) archived(ctx context.Context) error {
	if r.archive == nil {
		return nil
	}
	v, err := r.archive.Sums(ctx, "a1", `clickfleet_archive_records_total{kind="raw"`)
	if err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	if stored := int64(v[0]); stored < r.res.Produced {
		return fmt.Errorf("archive: %d of %d records stored", stored, r.res.Produced)
	}
	if n := r.probes.unarchived(); n > 0 {
		return fmt.Errorf("archive: %d probes not checkpointed", n)
	}
	return nil
}

// observeReads starts the read window once the warm-up is over (steady only: in the other scenarios
// workers come and go, and their counters with them).
func (r *loadRun) observeReads(ctx context.Context) error {
	if r.cfg.Scenario != Steady {
		return nil
	}
	return r.reads.observe(ctx, r)
}

// endReads ends the read window at the load's end.
func (r *loadRun) endReads(ctx context.Context) error {
	if r.cfg.Scenario != Steady {
		return nil
	}
	f, err := r.reads.end(ctx, r)
	r.res.Reads = f
	return err
}
