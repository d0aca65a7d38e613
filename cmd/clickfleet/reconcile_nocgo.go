//go:build !cgo

package main

import (
	"github.com/spf13/cobra"
)

// newReconcileCommand, in a build without cgo, only says why reconcile is missing: the lake's sessions
// are computed by DuckDB, a C++ library linked through cgo. It exits 2: nothing was compared.
func newReconcileCommand(_ *globals) *cobra.Command {
	return &cobra.Command{
		Use:                "reconcile",
		Short:              "Compare the lake's sessions with the sessions table (needs a cgo build: this binary has none)",
		DisableFlagParsing: true,
		RunE: func(*cobra.Command, []string) error {
			return usagef("reconcile: this clickfleet was built with CGO_ENABLED=0; reconcile runs DuckDB, which needs cgo: build with a C toolchain (make build)")
		},
	}
}
