package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"golang.org/x/term"

	"github.com/clickfleet/clickfleet/ingest/clickgen"
	"github.com/clickfleet/clickfleet/messages"
)

func newGenCommand(g *globals) *cobra.Command {
	var (
		profile, stream, out string
		httpTarget, apiKey   string
		cfg                  = clickgen.DefaultConfig(clickgen.ProfilePOC)
		users                int
	)
	cmd := &cobra.Command{
		Use:   "gen",
		Short: "Generate clicks like the seed documents and put them on the stream",
		Long: `gen writes click events with PutRecords batches (partition key user_id) and shows progress.

Profiles: "poc" (numeric users with random public IPs, Search/AddToCart/ViewContent/Purchase and
additional_data, --rate events/s) and "lab" (user1..user3, checkout/search/category/detail/navigate, a click
every --click-interval and a --pause after every --pause-every clicks). Timestamps follow the profile's
clock; --time-scale compresses real pacing (0.01 sends the lab's two minutes in 1.2 s), 0 sends as fast as
the stream takes them. The run stops after --count events or --duration, whichever comes first.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Profile = clickgen.Profile(profile)
			if d := clickgen.DefaultConfig(cfg.Profile); users == 0 {
				cfg.Users = d.Users
			} else {
				cfg.Users = users
			}
			if !cmd.Flags().Changed("count") && cmd.Flags().Changed("duration") {
				cfg.Count = 0
			}
			if err := cfg.Validate(); err != nil {
				return usageError{err}
			}
			var sink clickgen.Sink
			target := stream
			if out != "" {
				if out != "-" {
					return usagef("--out (CLICKFLEET_OUT) takes only \"-\" (standard output), not %q", out)
				}
				sink, target = &clickgen.LineSink{W: os.Stdout}, "standard output"
			} else if httpTarget != "" {
				u, err := url.Parse(httpTarget)
				if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					return usagef("--target (CLICKFLEET_TARGET) must be empty (Kinesis) or an http:// or https:// URL of the ingest, not %q", httpTarget)
				}
				if u.Path == "" || u.Path == "/" {
					u.Path = "/v1/events"
				}
				ctx, stopRun := context.WithCancelCause(cmd.Context())
				defer stopRun(nil)
				cmd.SetContext(ctx)
				sink, target = &clickgen.HTTPSink{URL: u.String(), APIKey: apiKey, OnRejected: stopRun}, u.String()
			} else {
				if stream == "" {
					return usagef("--stream (CLICKFLEET_STREAM) is empty")
				}
				awsCfg, err := loadAWS(cmd.Context())
				if err != nil {
					return err
				}
				sink = &clickgen.StreamSink{API: kinesis.NewFromConfig(awsCfg), Stream: stream}
			}
			log := g.log.Named("gen")
			cfg.OnProgress = progressPrinter(log, out == "-")
			log.Info("generating", zap.String("profile", profile), zap.String("to", target), zap.Int("users", cfg.Users),
				zap.Int64("count", cfg.Count), zap.Duration("duration", cfg.Duration), zap.Float64("time_scale", cfg.TimeScale))
			st, err := clickgen.Run(cmd.Context(), cfg, sink, log)
			log.Info("done", zap.Int64("sent", st.Sent), zap.Int64("retried", st.Retried), zap.Int64("failures", st.Failures),
				zap.Duration("elapsed", st.Elapsed.Round(time.Millisecond)), zap.Float64("events_per_s", roundTo(st.Rate(), 1)))
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&profile, "profile", string(clickgen.ProfilePOC), `event profile: "poc" or "lab"`)
	f.StringVar(&stream, "stream", messages.Stream, "Kinesis stream to write to")
	f.StringVar(&httpTarget, "target", "", `where events go: empty for Kinesis (--stream), or the ingest's URL, e.g. http://127.0.0.1:8080`)
	f.StringVar(&apiKey, "api-key", "", "API key sent to the ingest with --target")
	f.StringVar(&out, "out", "", `write NDJSON to standard output ("-") instead of the stream`)
	f.IntVar(&users, "users", 0, "distinct users (default 100 for poc, 3 for lab)")
	f.Int64Var(&cfg.Count, "count", cfg.Count, "stop after this many events (0: no limit; with only --duration given, no limit)")
	f.DurationVar(&cfg.Duration, "duration", 0, "stop after this much real time (0: no limit)")
	f.Float64Var(&cfg.Rate, "rate", cfg.Rate, "poc profile: events per second of event time (0: as fast as possible)")
	f.DurationVar(&cfg.ClickInterval, "click-interval", cfg.ClickInterval, "lab profile: event time between clicks")
	f.DurationVar(&cfg.Pause, "pause", cfg.Pause, "lab profile: event time of the pause after every --pause-every clicks")
	f.IntVar(&cfg.PauseEvery, "pause-every", cfg.PauseEvery, "lab profile: clicks between pauses (0: never pause)")
	f.StringVar(&cfg.DeviceType, "device-type", cfg.DeviceType, "lab profile: device_type of the events")
	f.Float64Var(&cfg.TimeScale, "time-scale", cfg.TimeScale, "real time per unit of event time (1: real time, 0.01: 100x faster, 0: unpaced)")
	f.Int64Var(&cfg.Seed, "seed", cfg.Seed, "random seed; the same seed makes the same events")
	f.IntVar(&cfg.BatchSize, "batch-size", cfg.BatchSize, "events per PutRecords call (1-500)")
	return cmd
}

// progressPrinter shows the totals on one rewritten line when stderr is a terminal, and logs them
// otherwise (every 5 s at most, so logs stay readable).
func progressPrinter(log *zap.Logger, quiet bool) func(clickgen.Stats) {
	tty := term.IsTerminal(int(os.Stderr.Fd()))
	var lastLog time.Time
	return func(s clickgen.Stats) {
		switch {
		case quiet:
		case tty:
			fmt.Fprintf(os.Stderr, "\r\033[Ksent %s  %s/s  retried %d  failures %d  %s",
				group(s.Sent), group(int64(s.Rate())), s.Retried, s.Failures, s.Elapsed.Round(time.Second))
		case time.Since(lastLog) >= 5*time.Second:
			lastLog = time.Now()
			log.Info("progress", zap.Int64("sent", s.Sent), zap.Float64("events_per_s", roundTo(s.Rate(), 1)),
				zap.Int64("retried", s.Retried), zap.Int64("failures", s.Failures))
		}
	}
}

// group formats n with thousands separators: 12345 → "12,345".
func group(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func roundTo(v float64, decimals int) float64 {
	p := 1.0
	for range decimals {
		p *= 10
	}
	return float64(int64(v*p+0.5)) / p
}
