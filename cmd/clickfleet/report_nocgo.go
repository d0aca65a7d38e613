//go:build !cgo

package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newReportCommand, in a build without cgo, only says why report is missing: it needs DuckDB, a C++
// library linked through cgo.
func newReportCommand(_ *globals) *cobra.Command {
	return &cobra.Command{
		Use:                "report NAME",
		Short:              "Run a report over the lake (needs a cgo build: this binary has none)",
		DisableFlagParsing: true,
		RunE: func(*cobra.Command, []string) error {
			return errors.New("report: this clickfleet was built with CGO_ENABLED=0; report runs DuckDB, which needs cgo: build with a C toolchain (make build)")
		},
	}
}
