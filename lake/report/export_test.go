//go:build cgo

package report

// CheckParquet is checkParquet, for tests.
var CheckParquet = checkParquet
