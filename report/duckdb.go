//go:build cgo

package report

import _ "github.com/duckdb/duckdb-go/v2" // registers the "duckdb" database/sql driver
