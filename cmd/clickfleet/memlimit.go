package main

import (
	"github.com/KimMachineGun/automemlimit/memlimit"
)

// memoryLimitRatio is the share of the container's memory limit the Go runtime's soft limit is set to: the
// rest is for what the runtime does not count (goroutine stacks beyond the heap goal, cgo: DuckDB, Parquet).
const memoryLimitRatio = 0.9

// limitMemory sets the runtime's soft memory limit (GOMEMLIMIT) to memoryLimitRatio of provider's limit —
// the container's cgroup memory limit in main — unless GOMEMLIMIT is set or AUTOMEMLIMIT=off. A worker
// with a million live users keeps a heap of a gigabyte or more: with the limit the collector works harder
// only as the heap nears what the task may use, instead of the task being killed for memory when GOGC's
// doubling of a large live heap crosses the limit. No limit (outside a container) leaves the runtime as is.
func limitMemory(provider memlimit.Provider) (int64, error) {
	return memlimit.Set(memlimit.WithRatio(memoryLimitRatio), memlimit.WithProvider(provider))
}
