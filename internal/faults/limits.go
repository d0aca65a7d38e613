package faults

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/prometheus/client_golang/prometheus"
)

// Kinesis' documented limits, as the Limits layer enforces them (checked 2026-12-06):
//   - "Quotas and limits", https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html:
//     per shard, shared by every application reading or writing it, 5 GetRecords calls/s and 2 MiB/s
//     read — one call may return up to 10 MiB, and calls in the next 5 s are then refused —, 1,000
//     records/s and 1 MiB/s written (data plus partition key).
//   - each operation's API reference, https://docs.aws.amazon.com/kinesis/latest/APIReference/API_<Operation>.html
//     ("… has a limit of …"): GetShardIterator 5/s per open shard; ListShards 1,000/s per stream;
//     DescribeStreamSummary 20/s per account; RegisterStreamConsumer 5/s per account;
//     DescribeStreamConsumer 20/s per stream; ListStreamConsumers 5/s per stream; DescribeLimits 1/s per
//     account; SubscribeToShard once per second per consumer and shard.
const mib = 1 << 20

// rate is one token bucket's shape: perSecond refill, burst capacity. key tells buckets of one scope
// apart; name is the limit's label in metrics and messages.
type rate struct {
	perSecond, burst float64
	key, name        string
}

// The per-shard data-plane limits, each a token bucket holding one second's worth: after a quiet second
// five calls may come at once, and 5 per second on average. A read's bytes are known only from its answer,
// so a call is admitted while the read-bytes bucket is not below zero and its answer's bytes are then
// taken, into debt if need be: a call that returned 10 MiB from a full bucket refuses the shard's reads
// for the next 4 s (AWS documents 5 s; the layer lets the second's 2 MiB through first), one that
// returned 3 MiB for 0.5 s. Readers whose calls together read less than 2 MiB/s are never refused for
// bytes, at whatever phase their calls come. The write buckets hold one second's records and bytes.
var (
	readCalls     = rate{5, 5, "read-calls", "calls"}
	readBytes     = rate{2 * mib, 2 * mib, "read-bytes", "bytes"}
	writeRecords  = rate{1000, 1000, "write-records", "records"}
	writeBytes    = rate{mib, mib, "write-bytes", "bytes"}
	iteratorCalls = rate{5, 5, "iterator-calls", "calls"}
)

// scope is what one control-plane limit counts calls per.
type scope int

const (
	perAccount       scope = iota // every call of the operation (the layer stands for one account)
	perStream                     // per stream (calls naming no stream share one bucket)
	perConsumerShard              // per consumer ARN and shard
)

// callLimit is a control-plane operation's documented rate; exceeding it is answered with
// LimitExceededException.
type callLimit struct {
	perSecond float64
	scope     scope
}

// callLimits are the control-plane rates the layer enforces; other operations pass unlimited.
var callLimits = map[string]callLimit{
	"ListShards":             {1000, perStream},
	"DescribeStreamSummary":  {20, perAccount},
	"RegisterStreamConsumer": {5, perAccount},
	"DescribeStreamConsumer": {20, perStream},
	"ListStreamConsumers":    {5, perStream},
	"DescribeLimits":         {1, perAccount},
	"SubscribeToShard":       {1, perConsumerShard},
}

// iteratorTTL is how long the layer remembers which shard an iterator reads: a Kinesis shard iterator
// expires 5 minutes after it is issued.
const iteratorTTL = 6 * time.Minute

// sweepEvery is how often expired iterators and buckets back at their capacity (the same as new ones)
// are forgotten.
const sweepEvery = 30 * time.Second

// LimitsConfig configures a Limits layer. Zero values take the documented defaults.
type LimitsConfig struct {
	// ShardMapRefresh is how long a stream's shard map (ListShards, asked of the upstream directly) is
	// used to place PutRecords' records before it is listed again; a stream that cannot be listed is
	// asked again after as long. Default: 1s.
	ShardMapRefresh time.Duration
	// Registerer receives the layer's metrics (clickfleet_kinesis_limits_*). Default: nil (none).
	Registerer prometheus.Registerer
}

// DefaultShardMapRefresh is LimitsConfig.ShardMapRefresh's default.
const DefaultShardMapRefresh = time.Second

// LimitStats is what a Limits layer counted of one operation on one shard (Shard empty: on one stream;
// Stream and Shard empty: on the account).
type LimitStats struct {
	Operation string `json:"operation"`
	Stream    string `json:"stream,omitempty"`
	Shard     string `json:"shard,omitempty"`
	// Calls that arrived, refused or not; for PutRecords and PutRecord, records.
	Calls int `json:"calls"`
	// Throttled calls (records), answered with AWS's exception.
	Throttled int `json:"throttled"`
	// Bytes of record data (PutRecords, PutRecord: plus partition keys) read or written.
	Bytes int64 `json:"bytes"`
}

// Limits is an HTTP layer in front of an AWSLayer to a Kinesis emulator that enforces Kinesis' documented
// per-shard and per-operation limits, summed over every caller, and answers a call over a limit with the
// exception AWS sends: ProvisionedThroughputExceededException for the per-shard limits (GetRecords,
// GetShardIterator; PutRecords per record, in a 200 answer, as AWS does), LimitExceededException for the
// control-plane rates. It counts calls and refusals per operation and shard (Stats, metrics).
//
// A GetRecords call carries only an iterator, so the layer learns which shard each iterator reads from
// the GetShardIterator and GetRecords answers it passes (an iterator issued before the layer started is
// not placed: such calls pass unlimited and are counted as unmapped). Its read bytes are the sum of the
// records' data sizes in the answer, which the layer holds (up to GetRecords' 10 MiB) until it has
// charged them, so that a caller's next call finds them charged. Records of PutRecords are placed on
// shards by their hash key (MD5 of the partition key, or the explicit hash key) within the open shards'
// ranges as ListShards last listed them (LimitsConfig.ShardMapRefresh); when the stream cannot be listed,
// the call passes unlimited, counted as unmapped.
//
// The zero value is not usable: call NewLimits. It starts no goroutines; methods are safe for concurrent
// use.
type Limits struct {
	next    http.Handler
	shards  *shardMaps
	now     func() time.Time
	metrics *limitsMetrics

	mu        sync.Mutex
	buckets   map[bucketKey]*bucket
	stats     map[statKey]*LimitStats
	unmapped  map[string]int
	iterators map[string]issuedIterator
	swept     time.Time
}

type bucketKey struct{ key, stream, shard string }

type statKey struct{ op, stream, shard string }

// issuedIterator is the shard a shard iterator reads and when the layer saw it issued.
type issuedIterator struct {
	stream, shard string
	at            time.Time
}

// NewLimits returns a layer that enforces the limits in front of next and lists shards from next's
// upstream directly; it does no I/O.
func NewLimits(next *AWSLayer, cfg LimitsConfig) (*Limits, error) {
	if next == nil {
		return nil, errors.New("faults: NewLimits needs an AWSLayer")
	}
	switch {
	case cfg.ShardMapRefresh == 0:
		cfg.ShardMapRefresh = DefaultShardMapRefresh
	case cfg.ShardMapRefresh < 0:
		return nil, fmt.Errorf("faults: ShardMapRefresh must not be negative, got %s", cfg.ShardMapRefresh)
	}
	m, err := newLimitsMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	api := kinesis.New(kinesis.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(next.upstream.String()),
		Credentials: credentials.NewStaticCredentialsProvider("local", "local", ""),
	})
	l := &Limits{next: next, now: time.Now, metrics: m, buckets: map[bucketKey]*bucket{}, stats: map[statKey]*LimitStats{},
		unmapped: map[string]int{}, iterators: map[string]issuedIterator{}}
	l.shards = &shardMaps{api: api, refresh: cfg.ShardMapRefresh, now: func() time.Time { return l.now() }, maps: map[string]*shardMap{}}
	return l, nil
}

// NewKinesisLimits returns a Limits in front of a new AWSLayer (with no fault set) to the Kinesis emulator
// at upstream; it does no I/O.
func NewKinesisLimits(upstream string, cfg LimitsConfig) (*Limits, error) {
	layer, err := NewAWSLayer(upstream, 1)
	if err != nil {
		return nil, err
	}
	return NewLimits(layer, cfg)
}

// ServeHTTP answers r with AWS's exception when it is over a limit, and forwards it otherwise.
func (l *Limits) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op := Operation(r)
	l.metrics.calls.WithLabelValues(op).Inc()
	switch op {
	case "GetRecords":
		l.getRecords(w, r)
	case "GetShardIterator":
		l.getShardIterator(w, r)
	case "PutRecords":
		l.putRecords(w, r)
	case "PutRecord":
		l.putRecord(w, r)
	default:
		if lim, ok := callLimits[op]; ok {
			l.control(w, r, op, lim)
			return
		}
		l.next.ServeHTTP(w, r)
	}
}

// getRecords admits a GetRecords call within its shard's call and byte limits, and charges the bytes it
// returned to the shard.
func (l *Limits) getRecords(w http.ResponseWriter, r *http.Request) {
	const op = "GetRecords"
	var in getRecordsIn
	it, ok := issuedIterator{}, false
	if body, read := readBody(r); read && json.Unmarshal(body, &in) == nil {
		it, ok = l.iterator(in.ShardIterator)
	}
	if !ok {
		l.passUnmapped(w, r, op)
		return
	}
	if limit := l.admitRead(it.stream, it.shard); limit != "" {
		l.refuseShard(w, op, limit, it.stream, it.shard)
		return
	}
	// The answer is held until its bytes are charged, so that the caller's next call finds them charged.
	bw := newBufferWriter()
	l.next.ServeHTTP(bw, r)
	var out getRecordsOut
	if bw.decode(&out) {
		l.afterRead(it, out.bytes(), out.NextShardIterator)
	}
	bw.copyTo(w)
}

// getShardIterator admits a GetShardIterator call within its shard's rate and remembers the shard of the
// iterator it returns.
func (l *Limits) getShardIterator(w http.ResponseWriter, r *http.Request) {
	const op = "GetShardIterator"
	var ref kinesisRef
	if body, read := readBody(r); !read || json.Unmarshal(body, &ref) != nil || ref.stream() == "" || ref.ShardID == "" {
		l.passUnmapped(w, r, op)
		return
	}
	stream, shard := ref.stream(), ref.ShardID
	if !l.admitCall(op, iteratorCalls, stream, shard) {
		l.refuseShard(w, op, iteratorCalls.name, stream, shard)
		return
	}
	bw := newBufferWriter()
	l.next.ServeHTTP(bw, r)
	var out shardIteratorOut
	if bw.decode(&out) && out.ShardIterator != nil {
		l.mu.Lock()
		l.remember(*out.ShardIterator, stream, shard, l.now())
		l.mu.Unlock()
	}
	bw.copyTo(w)
}

// control admits a control-plane call within its operation's rate.
func (l *Limits) control(w http.ResponseWriter, r *http.Request, op string, lim callLimit) {
	var ref kinesisRef
	if body, read := readBody(r); read {
		_ = json.Unmarshal(body, &ref) // unreadable: counted with the calls naming nothing
	}
	var stream, shard, per string
	switch lim.scope {
	case perAccount:
		per = "account"
	case perStream:
		stream, per = ref.stream(), "stream"
	case perConsumerShard:
		stream, shard, per = ref.ConsumerARN, ref.ShardID, "consumer and shard"
	}
	if !l.admitCall(op, rate{lim.perSecond, lim.perSecond, op, "calls"}, stream, shard) {
		l.metrics.throttled.WithLabelValues(op, "calls").Inc()
		writeKinesisError(w, LimitExceeded, fmt.Sprintf("Rate exceeded for %s: %g calls per second per %s (under account %s).", op, lim.perSecond, per, account))
		return
	}
	l.next.ServeHTTP(w, r)
}

// passUnmapped forwards a call the layer cannot place on a shard, counting it.
func (l *Limits) passUnmapped(w http.ResponseWriter, r *http.Request, op string) {
	l.mu.Lock()
	l.unmapped[op]++
	l.mu.Unlock()
	l.metrics.unmapped.WithLabelValues(op).Inc()
	l.next.ServeHTTP(w, r)
}

// refuseShard answers a call over one of its shard's limits.
func (l *Limits) refuseShard(w http.ResponseWriter, op, limit, stream, shard string) {
	l.metrics.throttled.WithLabelValues(op, limit).Inc()
	writeKinesisError(w, ThroughputExceeded, shardMessage(stream, shard))
}

// shardMessage is AWS's message for a shard over its limit.
func shardMessage(stream, shard string) string {
	return fmt.Sprintf("Rate exceeded for shard %s in stream %s under account %s.", shard, stream, account)
}

// admitRead decides a GetRecords call on a shard: "" when admitted (a call is spent), else the limit it
// is over.
func (l *Limits) admitRead(stream, shard string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	st := l.stat("GetRecords", stream, shard)
	st.Calls++
	calls, bytes := l.bucket(readCalls, stream, shard, now), l.bucket(readBytes, stream, shard, now)
	switch {
	case !bytes.has(now, 0):
		st.Throttled++
		return readBytes.name
	case !calls.has(now, 1):
		st.Throttled++
		return readCalls.name
	}
	calls.take(now, 1)
	return ""
}

// afterRead charges n bytes read to the iterator's shard and remembers the next iterator.
func (l *Limits) afterRead(it issuedIterator, n int64, next *string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.bucket(readBytes, it.stream, it.shard, now).take(now, float64(n))
	l.stat("GetRecords", it.stream, it.shard).Bytes += n
	if next != nil {
		l.remember(*next, it.stream, it.shard, now)
	}
}

// admitCall decides a call limited by one rate, counting it under op.
func (l *Limits) admitCall(op string, rt rate, stream, shard string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	st := l.stat(op, stream, shard)
	st.Calls++
	if b := l.bucket(rt, stream, shard, now); b.has(now, 1) {
		b.take(now, 1)
		return true
	}
	st.Throttled++
	return false
}

// admitWrite decides one record of size bytes on a shard: "" when admitted (its record and bytes are
// spent), else the limit it is over. l.mu is held.
func (l *Limits) admitWrite(op, stream, shard string, size int64, now time.Time) string {
	st := l.stat(op, stream, shard)
	st.Calls++
	recs, bytes := l.bucket(writeRecords, stream, shard, now), l.bucket(writeBytes, stream, shard, now)
	cost := min(float64(size), writeBytes.burst) // a record over 1 MiB is the upstream's to refuse
	switch {
	case !recs.has(now, 1):
		st.Throttled++
		return writeRecords.name
	case !bytes.has(now, cost):
		st.Throttled++
		return writeBytes.name
	}
	recs.take(now, 1)
	bytes.take(now, cost)
	st.Bytes += size
	return ""
}

// bucket returns the bucket of rt for a stream and shard, new (full) if there is none. l.mu is held.
func (l *Limits) bucket(rt rate, stream, shard string, now time.Time) *bucket {
	k := bucketKey{rt.key, stream, shard}
	b := l.buckets[k]
	if b == nil {
		b = newBucket(rt.perSecond, rt.burst, now)
		l.buckets[k] = b
	}
	return b
}

// stat returns the counts of op on a stream and shard. l.mu is held.
func (l *Limits) stat(op, stream, shard string) *LimitStats {
	k := statKey{op, stream, shard}
	s := l.stats[k]
	if s == nil {
		s = &LimitStats{Operation: op, Stream: stream, Shard: shard}
		l.stats[k] = s
	}
	return s
}

// iterator returns the shard an iterator the layer saw issued reads.
func (l *Limits) iterator(it string) (issuedIterator, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	is, ok := l.iterators[it]
	return is, ok
}

// remember notes the shard an iterator reads, and now and then forgets what has expired. l.mu is held.
func (l *Limits) remember(it, stream, shard string, now time.Time) {
	l.iterators[it] = issuedIterator{stream: stream, shard: shard, at: now}
	if now.Sub(l.swept) < sweepEvery {
		return
	}
	l.swept = now
	for k, is := range l.iterators {
		if now.Sub(is.at) > iteratorTTL {
			delete(l.iterators, k)
		}
	}
	for k, b := range l.buckets {
		if b.full(now) {
			delete(l.buckets, k)
		}
	}
}

// Stats returns what the layer counted of op on a stream's shard (shard "": a per-stream operation;
// stream and shard "": a per-account one).
func (l *Limits) Stats(op, stream, shard string) LimitStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s := l.stats[statKey{op, stream, shard}]; s != nil {
		return *s
	}
	return LimitStats{Operation: op, Stream: stream, Shard: shard}
}

// AllStats returns every count the layer holds, sorted by stream, shard and operation; with stream set,
// only that stream's.
func (l *Limits) AllStats(stream string) []LimitStats {
	l.mu.Lock()
	out := make([]LimitStats, 0, len(l.stats))
	for _, s := range l.stats {
		if stream == "" || s.Stream == stream {
			out = append(out, *s)
		}
	}
	l.mu.Unlock()
	slices.SortFunc(out, func(a, b LimitStats) int {
		return strings.Compare(a.Stream+"\x00"+a.Shard+"\x00"+a.Operation, b.Stream+"\x00"+b.Shard+"\x00"+b.Operation)
	})
	return out
}

// Unmapped returns how many calls of op the layer could not place on a shard and passed unlimited.
func (l *Limits) Unmapped(op string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.unmapped[op]
}

// limitsMetrics are the layer's Prometheus metrics.
type limitsMetrics struct {
	calls     *prometheus.CounterVec
	throttled *prometheus.CounterVec
	unmapped  *prometheus.CounterVec
}

func newLimitsMetrics(reg prometheus.Registerer) (*limitsMetrics, error) {
	opts := func(name, help string) prometheus.CounterOpts {
		return prometheus.CounterOpts{Namespace: "clickfleet", Subsystem: "kinesis_limits", Name: name, Help: help}
	}
	m := &limitsMetrics{
		calls: prometheus.NewCounterVec(opts("calls_total", "Kinesis calls that reached the limits layer, by operation."), []string{"operation"}),
		throttled: prometheus.NewCounterVec(opts("throttled_total",
			"Calls (PutRecords: records) refused with ProvisionedThroughputExceededException or LimitExceededException, by operation and the limit exceeded (calls, bytes, records)."),
			[]string{"operation", "limit"}),
		unmapped: prometheus.NewCounterVec(opts("unmapped_total",
			"Calls the layer could not place on a shard (an iterator it did not see issued, a stream it cannot list), passed unlimited."), []string{"operation"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.calls, m.throttled, m.unmapped} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("faults: register limits metrics: %w", err)
		}
	}
	return m, nil
}
