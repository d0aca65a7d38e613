package archive_test

import (
	"fmt"
	"time"

	"github.com/clickfleet/clickfleet/lake"
	"github.com/clickfleet/clickfleet/lake/archive"
)

// A lake URL names a bucket and a prefix; objects go under the prefix, in hourly partitions, named after
// their first record.
func ExampleParseURL() {
	l, err := archive.ParseURL("s3://clickfleet-lake/raw")
	if err != nil {
		panic(err)
	}
	at := time.Date(2021, 7, 12, 20, 24, 49, 0, time.UTC)
	fmt.Println(l.Bucket)
	fmt.Println(l.Prefix + lake.HourPrefix(at) + lake.ObjectName("clickstream", "shardId-000000000001", "4960", 0) + lake.ExtNDJSONGzip)
	// Output:
	// clickfleet-lake
	// raw/year=2021/month=07/day=12/hour=20/clickstream-shardId-000000000001-4960-0.ndjson.gz
}
