// Package bench measures clickfleet against real shards — the local stack or AWS — and reports each
// figure beside a baseline measured in the same run, so results are ratios on one (possibly noisy)
// machine.
//
// Scenarios: Drain (pre-fill a stream, then measure how fast consumers empty it, beside a bare
// GetRecords loop over the same stream); Load (steady, failover, reshard, scale-out: worker processes
// under a fixed rate); Chaos (consume and archive workers through fault proxies under a seeded schedule
// of faults, every result compared with an oracle computed in PostgreSQL). Each scenario creates its own stream and lease table and deletes
// them afterwards. It is not a test suite: `make test` runs each scenario briefly so it cannot rot; the
// full runs are `clickfleet bench …` commands (see bench/README.md).
package bench
