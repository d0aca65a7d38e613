package main

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/actors/session"
	"github.com/clickfleet/clickfleet/enrich/names"
)

func newNamesSyncCommand(g *globals) *cobra.Command {
	var (
		pgDSN, redisURL, keyPrefix, httpListen string
		interval                               time.Duration
	)
	cmd := &cobra.Command{
		Use:   "names-sync",
		Short: "Copy customers' names and prices from PostgreSQL into Redis, on a period and on every change",
		Long: `names-sync copies customers(customer_id, name, price_per_click) into the fields name and price_per_click of
the Redis hash <key-prefix>user:<customer_id>, every --sync-interval and at once on each change (LISTEN on the
trigger that 'clickfleet setup --pg-dsn' installs). A deleted customer loses those two fields; other fields
of the hash (the actors') are never touched. It reconnects to PostgreSQL with backoff and copies everything
again after a reconnect. Until the customers table exists ('clickfleet setup --pg-dsn' creates it) it
waits: /readyz answers 503, a warning is logged once a minute, and the first copy follows as soon as the
table appears. Stop it with SIGTERM or SIGINT.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			log := g.log.Named("names-sync")
			rdb, err := newRedis(redisURL)
			if err != nil {
				return err
			}
			defer rdb.Close()
			reg := newRegistry()
			s, closePool, err := newNamesSyncer(ctx, pgDSN, rdb, keyPrefix, interval, log, reg)
			if err != nil {
				return err
			}
			defer closePool()
			parts := []component{{name: "names sync", run: s.Run}}
			ops, ok, err := opsServer(httpListen, reg, s.Ready, log)
			if err != nil {
				return err
			}
			if ok {
				parts = append(parts, ops)
			}
			log.Info("syncing customer names", zap.String("key_prefix", keyPrefix), zap.Duration("sync_interval", interval))
			return runGroup(ctx, log, parts...)
		},
	}
	f := cmd.Flags()
	f.StringVar(&pgDSN, "pg-dsn", "", "PostgreSQL connection string of the database holding customers")
	f.StringVar(&redisURL, "redis-url", "redis://127.0.0.1:6379/0", "Redis that receives the names")
	f.StringVar(&keyPrefix, "key-prefix", session.DefaultPrefix, "prefix of every Redis key")
	f.DurationVar(&interval, "sync-interval", names.DefaultInterval, "period of the full copy (changes also arrive at once through LISTEN/NOTIFY)")
	f.StringVar(&httpListen, "http-listen", "127.0.0.1:9092", "address for /metrics, /healthz and /readyz (empty: none)")
	return cmd
}

// newNamesSyncer checks the names-sync settings and returns a syncer over a new PostgreSQL pool (closed by
// the returned func).
func newNamesSyncer(ctx context.Context, pgDSN string, rdb *redis.Client, prefix string, interval time.Duration,
	log *zap.Logger, reg prometheus.Registerer) (*names.Syncer, func(), error) {
	if pgDSN == "" {
		return nil, nil, usagef("--pg-dsn (CLICKFLEET_PG_DSN) is required to sync names")
	}
	if interval <= 0 {
		return nil, nil, usagef("--sync-interval (CLICKFLEET_SYNC_INTERVAL) must be positive, got %s", interval)
	}
	pcfg, err := pgxpool.ParseConfig(pgDSN)
	if err != nil {
		return nil, nil, usagef("--pg-dsn (CLICKFLEET_PG_DSN): %v", err)
	}
	pcfg.MaxConns = max(pcfg.MaxConns, 2) // one for LISTEN, one for the copies
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, nil, usagef("--pg-dsn (CLICKFLEET_PG_DSN): %v", err)
	}
	s, err := names.New(names.Config{Pool: pool, Redis: rdb, Prefix: prefix, Interval: interval, Logger: log, Registerer: reg})
	if err != nil {
		pool.Close()
		return nil, nil, settingUsage(err, map[string]string{"Interval": "sync-interval", "Prefix": "key-prefix"})
	}
	return s, pool.Close, nil
}
