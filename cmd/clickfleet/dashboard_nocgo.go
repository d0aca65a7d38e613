//go:build !cgo

package main

import (
	"context"
	"errors"

	"github.com/aws/aws-sdk-go-v2/aws"
	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/lake/dashboard"
)

// newLakeDatasets, in a build without cgo, has no DuckDB to compute the charts with: every chart answers
// 503 saying so; the fleet panel works.
func newLakeDatasets(_ context.Context, _ aws.Config, _ dashboardSettings, log *zap.Logger) (dashboard.Datasets, error) {
	err := errors.New("this clickfleet was built with CGO_ENABLED=0; the charts run DuckDB, which needs cgo: build with a C toolchain (make build)")
	log.Warn("the charts are unavailable in this build; the fleet panel works", zap.Error(err))
	return unavailableDatasets{err: &dashboard.SourceError{Source: "lake queries (DuckDB)", Err: err}}, nil
}
