//go:build cgo

package report

import (
	"context"
	"fmt"

	"github.com/clickfleet/clickfleet/lake"
)

// CheckParquet is checkParquet, for tests.
var CheckParquet = checkParquet

// Query syncs the lake as a report run does, defines the events view over its readable files in a fresh
// DuckDB database and runs q there, for tests that read the lake as the reports do.
func (r *Runner) Query(ctx context.Context, q string) (*Table, error) {
	files, _, err := r.Prepare(ctx)
	if err != nil {
		return nil, err
	}
	db, conn, err := r.open(ctx)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, lake.DuckDBView(lake.Events, files)); err != nil {
		return nil, fmt.Errorf("define the events view: %w", err)
	}
	return query(ctx, conn, q)
}
