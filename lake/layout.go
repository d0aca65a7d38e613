package lake

import (
	"strconv"
	"time"
)

// DefaultBucket is the lake's bucket unless configured, DefaultURL the lake at its root, and
// DefaultLeaseTable the lease table of the application that writes it (clickfleet archive; the consumer
// fleet has its own).
const (
	DefaultBucket     = "clickfleet-lake"
	DefaultURL        = "s3://" + DefaultBucket + "/"
	DefaultLeaseTable = "clickfleet-archive-leases"
)

// Extensions of the lake's objects.
const (
	ExtNDJSONGzip = ".ndjson.gz"
	ExtNDJSON     = ".ndjson"
	ExtParquet    = ".parquet"
)

// HourPrefix returns the Hive partition path of the UTC hour of t: "year=YYYY/month=MM/day=DD/hour=HH/".
func HourPrefix(t time.Time) string {
	t = t.UTC()
	b := make([]byte, 0, 40)
	b = append(b, "year="...)
	b = appendPadded(b, t.Year(), 4)
	b = append(b, "/month="...)
	b = appendPadded(b, int(t.Month()), 2)
	b = append(b, "/day="...)
	b = appendPadded(b, t.Day(), 2)
	b = append(b, "/hour="...)
	b = appendPadded(b, t.Hour(), 2)
	return string(append(b, '/'))
}

func appendPadded(b []byte, v, width int) []byte {
	s := strconv.Itoa(v)
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}

// ObjectName returns the name shared by the raw, events and errors objects that start at a record: the
// stream, the shard, and the first record's sequence and sub-sequence numbers, so a replay from the same
// record names the same objects. Add the extension.
func ObjectName(stream, shardID, firstSeq string, firstSub int64) string {
	return stream + "-" + shardID + "-" + firstSeq + "-" + strconv.FormatInt(firstSub, 10)
}

// Key returns an object's key: the table's prefix (after basePrefix, e.g. "" or "lake/"), the hour
// partition of firstArrival, the name and ext.
func (t *Table) Key(basePrefix string, firstArrival time.Time, name, ext string) string {
	return basePrefix + t.Prefix + HourPrefix(firstArrival) + name + ext
}
