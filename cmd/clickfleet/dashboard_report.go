//go:build cgo

package main

import (
	"context"
	"errors"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/lake/archive"
	"github.com/clickfleet/clickfleet/lake/dashboard"
	"github.com/clickfleet/clickfleet/lake/report"
)

// reportDatasets computes the dashboard's charts with the report package (DuckDB over the local copy of
// the lake), one query at a time: the queries share the cache directory and the machine's cores.
type reportDatasets struct {
	api  report.S3API
	base report.Config
	cfg  dashboardSettings
	mu   sync.Mutex
}

func newLakeDatasets(_ context.Context, awsCfg aws.Config, s dashboardSettings, log *zap.Logger) (dashboard.Datasets, error) {
	loc, err := archive.ParseURL(s.lakeURL)
	if err != nil {
		return nil, usagef("--lake-url (CLICKFLEET_LAKE_URL): %v", err)
	}
	s3c, err := newS3(awsCfg, s.pathStyle)
	if err != nil {
		return nil, err
	}
	base := report.Config{Bucket: loc.Bucket, Prefix: loc.Prefix, CacheDir: s.cacheDir, Threads: s.threads, NoUnload: true, Logger: log}
	if _, err := report.New(s3c, base); err != nil {
		return nil, settingUsage(err, reportFlags)
	}
	return &reportDatasets{api: s3c, base: base, cfg: s}, nil
}

func (d *reportDatasets) Query(ctx context.Context, name string, r dashboard.Range) (*dashboard.Table, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	cfg := d.base
	cfg.From, cfg.To = r.From, r.To
	runner, err := report.New(d.api, cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.queryTimeout)
	defer cancel()
	res, err := runner.Run(ctx, name)
	switch {
	case errors.Is(err, report.ErrEmptyLake):
		return nil, errors.Join(dashboard.ErrNoData, err)
	case errors.Is(err, report.ErrSync):
		return nil, &dashboard.SourceError{Source: "lake (S3)", Setting: "--lake-url (CLICKFLEET_LAKE_URL)", Err: err}
	case err != nil && errors.Is(err, context.DeadlineExceeded):
		return nil, &dashboard.SourceError{Source: "lake query", Setting: "--query-timeout (CLICKFLEET_QUERY_TIMEOUT)", Err: err}
	case err != nil:
		return nil, err
	}
	return &dashboard.Table{Columns: res.Table.Columns, Rows: res.Table.Rows}, nil
}
