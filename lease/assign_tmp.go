package lease

// TEMPORARY: the names the index work defines (lease/schema.go); removed when it is merged.

const OwnerIndex = "LeaseOwnerToLeaseKeyIndex"

func CoordinatorStateTable(table string) string { return table + "-CoordinatorState" }
func WorkerMetricsTable(table string) string    { return table + "-WorkerMetricStats" }
