package main

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/lake"
	"github.com/clickfleet/clickfleet/lake/archive"
	"github.com/clickfleet/clickfleet/lake/dashboard"
	"github.com/clickfleet/clickfleet/lake/lakecache"
	"github.com/clickfleet/clickfleet/lake/reconcile"
	"github.com/clickfleet/clickfleet/lease"
)

// dashboardSettings are what the lake datasets need (built with or without DuckDB).
type dashboardSettings struct {
	lakeURL, cacheDir, pathStyle string
	reconcileKey                 string
	threads                      int
	queryTimeout                 time.Duration
}

func newDashboardCommand(g *globals) *cobra.Command {
	var (
		ds                                  dashboardSettings
		listen, token, tokenFile            string
		workers, leaseTable, archiveTable   string
		trustProxy                          bool
		refresh, fleetRefresh, failoverTime time.Duration
	)
	cmd := &cobra.Command{
		Use:   "dashboard",
		Short: "Serve the dashboard: the lake's charts (the seed's QuickSight) and a live panel of the fleet",
		Long: `dashboard serves one web page on --listen with every asset embedded (Apache ECharts, US states and world
maps; no network at view time):

  events by name (donut), requests by US state (filled map), requests by city (bubbles at the geo
  database's coordinates), actions per customer (table), top 10 regions — the report datasets of the
  same names over the lake (--lake-url, copied into --cache-dir as 'clickfleet report' does), for the
  range the page's picker sets (whole UTC hours);
  sessions: sessions per hour, session length, events per session, sessions by device (the reports of
  the same names over the lake's sessions), the open sessions now (the consume workers'
  clickfleet_actors_sessions_open) and the last reconciliation ('clickfleet reconcile' stores it at
  --reconcile-key under the lake's prefix);
  the fleet: per shard its owner, state (held, moving, ended) and lag, leases per worker, records/s,
  live users, open sessions, archive objects — from the lease tables (--lease-table,
  --archive-lease-table) and the workers' /metrics (--workers).

JSON: /api/<chart>?from=&to= (400 naming a bad field; 503 naming a source that is down), /api/fleet,
/api/reconcile; /healthz. Customer names are personal data: on an address other than loopback the dashboard needs
--token / --token-file (the page takes it once as ?token=, then keeps it in a cookie; API clients send
"Authorization: Bearer <token>"), or --trust-proxy-auth behind an authenticating proxy (an ALB's
authenticate action: requests must carry X-Amzn-Oidc-Identity).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			log := g.log.Named("dashboard")
			if tokenFile != "" {
				if token != "" {
					return usagef("--token (CLICKFLEET_TOKEN) and --token-file (CLICKFLEET_TOKEN_FILE): give one, not both")
				}
				b, err := os.ReadFile(tokenFile)
				if err != nil {
					return usagef("--token-file (CLICKFLEET_TOKEN_FILE): %v", err)
				}
				if token = strings.TrimSpace(string(b)); token == "" {
					return usagef("--token-file (CLICKFLEET_TOKEN_FILE) %s is empty", tokenFile)
				}
			}
			if token != "" && len(token) < 16 {
				return usagef("--token (CLICKFLEET_TOKEN): at least 16 characters, got %d", len(token))
			}
			if !dashboard.IsLoopback(listen) && token == "" && !trustProxy {
				return usagef("--listen (CLICKFLEET_LISTEN) %s is not a loopback address, and the dashboard shows customer names: "+
					"set an access token with --token (CLICKFLEET_TOKEN) or --token-file (CLICKFLEET_TOKEN_FILE), "+
					"or --trust-proxy-auth (CLICKFLEET_TRUST_PROXY_AUTH) behind an authenticating proxy", listen)
			}
			if refresh < time.Second {
				return usagef("--refresh-interval (CLICKFLEET_REFRESH_INTERVAL) must be at least 1s, got %s", refresh)
			}
			if fleetRefresh < time.Second {
				return usagef("--fleet-refresh-interval (CLICKFLEET_FLEET_REFRESH_INTERVAL) must be at least 1s, got %s", fleetRefresh)
			}
			if failoverTime <= 0 {
				return usagef("--failover-time (CLICKFLEET_FAILOVER_TIME) must be positive, got %s", failoverTime)
			}
			if _, err := archive.ParseURL(ds.lakeURL); err != nil {
				return usagef("--lake-url (CLICKFLEET_LAKE_URL): %v", err)
			}
			if ds.cacheDir == "" {
				d, err := lakecache.DefaultDir()
				if err != nil {
					return usagef("--cache-dir (CLICKFLEET_CACHE_DIR): no user cache directory (%v): set one", err)
				}
				ds.cacheDir = d
			}
			var urls []string
			for _, u := range strings.Split(workers, ",") {
				if u = strings.TrimSpace(u); u != "" {
					if !strings.Contains(u, "://") {
						u = "http://" + u
					}
					urls = append(urls, strings.TrimRight(u, "/"))
				}
			}
			var tables []dashboard.LeaseTable
			if leaseTable != "" {
				tables = append(tables, dashboard.LeaseTable{App: "consume", Name: leaseTable})
			}
			if archiveTable != "" {
				tables = append(tables, dashboard.LeaseTable{App: "archive", Name: archiveTable})
			}
			awsCfg, err := loadAWS(ctx)
			if err != nil {
				return err
			}
			datasets, err := newLakeDatasets(ctx, awsCfg, ds, log)
			if err != nil {
				return err
			}
			var fleet *dashboard.Fleet
			if len(tables) > 0 || len(urls) > 0 {
				var db lease.DynamoDBAPI = dynamodb.NewFromConfig(awsCfg)
				fleet, err = dashboard.NewFleet(db, dashboard.FleetConfig{Tables: tables, Workers: urls, Interval: fleetRefresh,
					FailoverTime: failoverTime, Logger: log})
				if err != nil {
					return usagef("--workers (CLICKFLEET_WORKERS): %v", err)
				}
			}
			var recs dashboard.Reconciliations
			if ds.reconcileKey != "" {
				if recs, err = newLakeReconciliations(awsCfg, ds); err != nil {
					return err
				}
			}
			srv, err := dashboard.New(dashboard.Config{Datasets: datasets, Fleet: fleet, Reconciliations: recs, Token: token, TrustProxyAuth: trustProxy,
				RefreshInterval: refresh, FleetRefreshInterval: fleetRefresh, Lake: ds.lakeURL, Logger: log})
			if err != nil {
				return usageError{err}
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return usagef("--listen (CLICKFLEET_LISTEN) %s: %v", listen, err)
			}
			auth := "none (loopback)"
			switch {
			case token != "" && trustProxy:
				auth = "token or proxy identity"
			case token != "":
				auth = "token"
			case trustProxy:
				auth = "proxy identity (" + dashboard.ProxyIdentityHeader + ")"
			}
			log.Info("serving the dashboard", zap.String("url", "http://"+ln.Addr().String()+"/"), zap.String("lake", ds.lakeURL),
				zap.Strings("workers", urls), zap.String("lease_table", leaseTable), zap.String("archive_lease_table", archiveTable), zap.String("access", auth))
			parts := []component{{name: "dashboard server", run: func(ctx context.Context) error { return srv.Serve(ctx, ln) }}}
			if fleet != nil {
				parts = append(parts, component{name: "fleet collector", run: fleet.Run})
			}
			return runGroup(ctx, log, parts...)
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "127.0.0.1:8088", "address to serve the dashboard on; other than loopback it needs --token, --token-file or --trust-proxy-auth")
	f.StringVar(&token, "token", "", "access token (at least 16 characters) every request must carry; never logged")
	f.StringVar(&tokenFile, "token-file", "", "file holding the access token (instead of --token)")
	f.BoolVar(&trustProxy, "trust-proxy-auth", false, "serve requests an authenticating proxy let through (they carry "+dashboard.ProxyIdentityHeader+") without a token")
	f.StringVar(&workers, "workers", "", "comma-separated base URLs of the consume and archive workers' ops servers, e.g. http://127.0.0.1:9090,http://127.0.0.1:9091 (their /metrics is scraped)")
	f.StringVar(&leaseTable, "lease-table", lease.DefaultTable, "the consumer fleet's lease table (empty: not shown)")
	f.StringVar(&archiveTable, "archive-lease-table", lake.DefaultLeaseTable, "the archive's lease table (empty: not shown)")
	f.StringVar(&ds.lakeURL, "lake-url", lake.DefaultURL, "the lake: s3://bucket/prefix/ holding events/")
	f.StringVar(&ds.cacheDir, "cache-dir", "", "local copy of the lake (empty: clickfleet/lake under the user cache directory)")
	f.StringVar(&ds.pathStyle, "s3-path-style", "auto", "path-style S3 addressing: auto (on when AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL is set), true or false")
	f.StringVar(&ds.reconcileKey, "reconcile-key", reconcile.ResultKey, "where 'clickfleet reconcile' stores its last result, under the lake's prefix: the page shows it (empty: not shown)")
	f.IntVar(&ds.threads, "threads", 0, "DuckDB threads per query (0: one per core)")
	f.DurationVar(&ds.queryTimeout, "query-timeout", time.Minute, "bound on one chart's query, lake sync included; past it the chart answers 503")
	f.DurationVar(&refresh, "refresh-interval", 30*time.Second, "how often the page reloads the charts (and how long a chart's rows are reused)")
	f.DurationVar(&fleetRefresh, "fleet-refresh-interval", 5*time.Second, "how often the lease tables are read, the workers scraped and the fleet panel reloaded")
	f.DurationVar(&failoverTime, "failover-time", 10*time.Second, "the workers' --failover-time: a lease not renewed for this long is shown as moving")
	return cmd
}

// lakeReconciliations reads the last reconciliation's result from the lake (reconcile.Load).
type lakeReconciliations struct {
	api         reconcile.S3API
	bucket, key string
}

func newLakeReconciliations(awsCfg aws.Config, s dashboardSettings) (*lakeReconciliations, error) {
	loc, err := archive.ParseURL(s.lakeURL)
	if err != nil {
		return nil, usagef("--lake-url (CLICKFLEET_LAKE_URL): %v", err)
	}
	s3c, err := newS3(awsCfg, s.pathStyle)
	if err != nil {
		return nil, err
	}
	return &lakeReconciliations{api: s3c, bucket: loc.Bucket, key: loc.Prefix + strings.TrimPrefix(s.reconcileKey, "/")}, nil
}

func (l *lakeReconciliations) Location() string { return "s3://" + l.bucket + "/" + l.key }

func (l *lakeReconciliations) Latest(ctx context.Context) (*reconcile.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	res, err := reconcile.Load(ctx, l.api, l.bucket, l.key)
	if err != nil && !errors.Is(err, reconcile.ErrNoResult) {
		return nil, &dashboard.SourceError{Source: "lake (S3)", Setting: "--lake-url (CLICKFLEET_LAKE_URL), --reconcile-key (CLICKFLEET_RECONCILE_KEY)", Err: err}
	}
	return res, err
}

// unavailableDatasets answers every query with the same source error (a build without DuckDB).
type unavailableDatasets struct{ err *dashboard.SourceError }

func (u unavailableDatasets) Query(context.Context, string, dashboard.Range) (*dashboard.Table, error) {
	return nil, u.err
}
