// Command kinesis-limits serves package faults' Limits layer in front of a Kinesis emulator, so that the
// local stack answers as AWS does when a shard or an operation is over Kinesis' documented limits
// (ProvisionedThroughputExceededException, LimitExceededException). The local stack starts it
// (deploy/local/stack up --aws-limits); it is a tool for tests and benchmarks, not part of clickfleet.
//
//	kinesis-limits --listen 127.0.0.1:4571 --upstream http://127.0.0.1:4568
//
// Besides the Kinesis API on /, it serves its metrics on /-/metrics (Prometheus,
// clickfleet_kinesis_limits_*) and its counts per operation and shard on /-/stats (JSON; ?stream=NAME for
// one stream's). SIGTERM or SIGINT stops it; it exits 1 naming the flag when a setting is wrong.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/internal/faults"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:4571", "address to serve the Kinesis API on")
	upstream := flag.String("upstream", "", "the Kinesis emulator's endpoint URL, e.g. http://127.0.0.1:4568 (required)")
	refresh := flag.Duration("shard-map-refresh", faults.DefaultShardMapRefresh, "how long a stream's shard map places PutRecords' records before it is listed again")
	flag.Parse()
	log, err := zap.NewProduction()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kinesis-limits: logger:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, log, *listen, *upstream, *refresh); err != nil {
		log.Error("kinesis-limits failed", zap.Error(err))
		_ = log.Sync()
		stop()
		os.Exit(1)
	}
}

// run serves the layer until ctx ends.
func run(ctx context.Context, log *zap.Logger, listen, upstream string, refresh time.Duration) error {
	if upstream == "" {
		return errors.New("--upstream is required: the Kinesis emulator's endpoint URL")
	}
	reg := prometheus.NewRegistry()
	lim, err := faults.NewKinesisLimits(upstream, faults.LimitsConfig{ShardMapRefresh: refresh, Registerer: reg})
	if err != nil {
		return fmt.Errorf("--upstream %s, --shard-map-refresh %s: %w", upstream, refresh, err)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", listen, err)
	}
	srv := &http.Server{Handler: handler(lim, reg), ReadHeaderTimeout: 30 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("serving Kinesis within AWS's limits", zap.String("listen", ln.Addr().String()), zap.String("upstream", upstream))
	select {
	case err := <-served:
		return fmt.Errorf("serving on %s: %w", listen, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	<-served
	return nil
}

// handler serves the layer on / and its metrics and counts under /-/.
func handler(lim *faults.Limits, reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /-/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /-/stats", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(lim.AllStats(r.URL.Query().Get("stream")))
	})
	mux.Handle("/", lim)
	return mux
}
