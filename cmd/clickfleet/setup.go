package main

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/actors/session"
	"github.com/clickfleet/clickfleet/internal/provision"
	"github.com/clickfleet/clickfleet/lake"
	"github.com/clickfleet/clickfleet/lake/archive"
)

func newSetupCommand(g *globals) *cobra.Command {
	var (
		res                = provision.DefaultResources()
		pgDSN              string
		timeout            time.Duration
		demo               bool
		demoN              int
		lakeURL, pathStyle string
		rf                 routeFlags
		offerEvent         = session.DefaultRules().OfferEvent
		offerMinPercent    = session.DefaultRules().OfferMinPercent
	)
	cmd := &cobra.Command{
		Use:   "setup",
		Short: "Create the streams, DynamoDB tables and PostgreSQL schema (idempotent)",
		Long: `setup creates what is missing and leaves what exists: the input, offers and errors streams, the lease
table, the sessions table (with its user_id index), the archive's lease table, the autoscaler's lock table, the lake's bucket, and
the customers table with its change trigger, and the stream of every output route (--route,
--routes-file: give setup the routes consume gets). Each lease table has the owner index LeaseOwnerToLeaseKeyIndex and
two tables of its own, <table>-CoordinatorState and <table>-WorkerMetricStats.
A lease table made before the owner index gets it: online where the server adds an index (DynamoDB: the workers
may run on), else (an emulator) by copying the table offline, which setup refuses while a worker renews a lease
within --failover-time (stop the workers first); a run after an interruption finishes the copy.
It waits until streams, tables and indexes are ACTIVE. Endpoints come from the AWS SDK's environment
(AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_KINESIS, AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL_S3), so it sets up the local stack,
LocalStack and AWS alike.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := res.Validate(); err != nil {
				return usagef("%v", err)
			}
			routes, err := rf.load()
			if err != nil {
				return err
			}
			if res.RouteStreams, err = compileRoutes(routes, res.OffersStream, offerEvent, offerMinPercent, rf.names()); err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			awsCfg, err := loadAWS(ctx)
			if err != nil {
				return err
			}
			clients := provision.Clients{Kinesis: kinesis.NewFromConfig(awsCfg), DynamoDB: dynamodb.NewFromConfig(awsCfg)}
			if lakeURL != "" {
				lake, err := archive.ParseURL(lakeURL)
				if err != nil {
					return usagef("--lake-url (CLICKFLEET_LAKE_URL): %v", err)
				}
				s3c, err := newS3(awsCfg, pathStyle)
				if err != nil {
					return err
				}
				clients.S3, res.Buckets = s3c, []string{lake.Bucket}
			}
			if pgDSN != "" {
				conn, err := pgx.Connect(ctx, pgDSN)
				if err != nil {
					return usagef("--pg-dsn (CLICKFLEET_PG_DSN): %v", err)
				}
				defer conn.Close(context.WithoutCancel(ctx))
				clients.Postgres = conn
			}
			if demo && pgDSN == "" {
				return usagef("--demo needs --pg-dsn (CLICKFLEET_PG_DSN): the demo customers go into PostgreSQL")
			}
			if demo && demoN < 1 {
				return usagef("--demo-customers (CLICKFLEET_DEMO_CUSTOMERS) must be at least 1, got %d", demoN)
			}
			if err := provision.Setup(ctx, clients, res, g.log.Named("setup")); err != nil {
				return err
			}
			if demo {
				if err := provision.LoadDemo(ctx, clients.Postgres, demoN); err != nil {
					return err
				}
				g.log.Named("setup").Info("demo customers loaded", zap.Int("customers", demoN))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&res.Stream, "stream", res.Stream, "input stream")
	f.StringVar(&res.OffersStream, "offers-stream", res.OffersStream, "stream for high-intent events")
	f.StringVar(&res.ErrorsStream, "errors-stream", res.ErrorsStream, "stream for records that cannot be decoded or validated")
	rf.register(f)
	f.Int32Var(&res.Shards, "shards", res.Shards, "shards of the input stream when it is created")
	f.Int32Var(&res.OutputShards, "output-shards", res.OutputShards, "shards of the offers and errors streams when they are created")
	f.StringVar(&res.LeaseTable, "lease-table", res.LeaseTable, "DynamoDB lease table")
	f.StringVar(&res.SessionsTable, "sessions-table", res.SessionsTable, "DynamoDB sessions table")
	f.StringVar(&res.ArchiveLeaseTable, "archive-lease-table", res.ArchiveLeaseTable, "DynamoDB lease table of 'clickfleet archive'")
	f.StringVar(&res.ScaleLeaseTable, "scale-lease-table", res.ScaleLeaseTable, "DynamoDB table holding the lock of 'clickfleet scale' (its --lease-table)")
	f.StringVar(&lakeURL, "lake-url", lake.DefaultURL, "the lake, whose bucket is created (empty: no bucket)")
	f.StringVar(&pathStyle, "s3-path-style", "auto", "path-style S3 addressing: auto (on when AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL is set), true or false")
	f.StringVar(&pgDSN, "pg-dsn", "", "PostgreSQL connection string for the customers schema (empty: skip PostgreSQL)")
	f.DurationVar(&res.FailoverTime, "failover-time", res.FailoverTime, "the workers' --failover-time: before a lease table made without its owner index is copied offline "+
		"(on a server that cannot add an index, such as dynalite), its leases are watched this long, and a renewed one stops setup")
	f.DurationVar(&timeout, "timeout", 2*time.Minute, "give up when set-up takes longer")
	f.BoolVar(&demo, "demo", false, "also load demo customers (ids 1..N, the generator's POC users) with names and prices; needs --pg-dsn")
	f.IntVar(&demoN, "demo-customers", 300, "how many demo customers --demo loads")
	return cmd
}
