package archive

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/parquet-go/parquet-go"

	"github.com/clickfleet/clickfleet/consumer"
	"github.com/clickfleet/clickfleet/internal/retry"
	"github.com/clickfleet/clickfleet/lease"
	"github.com/clickfleet/clickfleet/messages"
)

// object is one stored object of a test bucket.
type object struct {
	key  string
	body []byte
	meta map[string]string
}

// listObjects returns every object under prefix in bucket, with its body and metadata.
func listObjects(t testing.TB, c *s3.Client, bucket, prefix string) []object {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out []object
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("list s3://%s/%s: %v", bucket, prefix, err)
		}
		for _, o := range page.Contents {
			g, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: o.Key})
			if err != nil {
				t.Fatalf("get %s: %v", *o.Key, err)
			}
			b, err := io.ReadAll(g.Body)
			g.Body.Close()
			if err != nil {
				t.Fatalf("read %s: %v", *o.Key, err)
			}
			out = append(out, object{key: *o.Key, body: b, meta: g.Metadata})
		}
	}
	return out
}

// lines returns the lines of an NDJSON object, gunzipped when its key ends in .gz.
func lines(t testing.TB, o object) []string {
	t.Helper()
	var r io.Reader = bytes.NewReader(o.body)
	if strings.HasSuffix(o.key, ".gz") {
		zr, err := gzip.NewReader(r)
		if err != nil {
			t.Fatalf("%s: %v", o.key, err)
		}
		r = zr
	}
	var out []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 4<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", o.key, err)
	}
	return out
}

// parquetRows reads a Parquet object with parquet-go's generic reader (not the writer's schema): each
// row as column name → value, and the file's column names.
func parquetRows(t testing.TB, o object) ([]map[string]parquet.Value, []string) {
	t.Helper()
	f, err := parquet.OpenFile(bytes.NewReader(o.body), int64(len(o.body)))
	if err != nil {
		t.Fatalf("%s: not Parquet: %v", o.key, err)
	}
	names := make([]string, 0)
	for _, c := range f.Schema().Columns() {
		names = append(names, strings.Join(c, "."))
	}
	for _, rg := range f.Metadata().RowGroups {
		for _, cc := range rg.Columns {
			if got := cc.MetaData.Codec.String(); got != "ZSTD" {
				t.Fatalf("%s: column %v compressed with %s, want ZSTD", o.key, cc.MetaData.PathInSchema, got)
			}
		}
	}
	r := parquet.NewReader(bytes.NewReader(o.body))
	defer r.Close()
	var out []map[string]parquet.Value
	buf := make([]parquet.Row, 64)
	for {
		n, err := r.ReadRows(buf)
		for _, row := range buf[:n] {
			m := map[string]parquet.Value{}
			for _, v := range row {
				m[names[v.Column()]] = v.Clone()
			}
			out = append(out, m)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: read rows: %v", o.key, err)
		}
	}
	return out, names
}

// errorLines decodes the lines of an errors object.
func errorLines(t testing.TB, o object) []errorLine {
	t.Helper()
	var out []errorLine
	for _, l := range lines(t, o) {
		var e errorLine
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("%s: bad line %q: %v", o.key, l, err)
		}
		out = append(out, e)
	}
	return out
}

// fakeCheckpointer records checkpoints (the processor tests drive a processor without a lease table).
type fakeCheckpointer struct {
	mu  sync.Mutex
	cps []lease.Checkpoint
	end bool
}

func (f *fakeCheckpointer) Checkpoint(_ context.Context, seq string, sub int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cps = append(f.cps, lease.Checkpoint{SequenceNumber: seq, SubSequence: sub})
	return nil
}

func (f *fakeCheckpointer) CheckpointShardEnd(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.end = true
	return nil
}

func (f *fakeCheckpointer) all() []lease.Checkpoint {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]lease.Checkpoint(nil), f.cps...)
}

// testShard is the shard id of the processor tests.
const testShard = "shardId-000000000000"

// seq returns the i-th synthetic sequence number (all of one length, so they order as numbers do).
func seq(i int) string { return fmt.Sprintf("4960%052d", i) }

// pocRecord returns record i: a POC event with click id click-<i>, or, when bad, a record that fails
// validation.
func pocRecord(i int, at time.Time, bad bool) consumer.Record {
	data := fmt.Sprintf(`{"timestamp":"2021-07-12 12:01:58.732726","user_id":"%d","pixel_id":"px%d","click_id":"click-%06d","insertion_timestamp":"2021-07-12 12:01:58.732800","event_name":"Search","user_ip":"","additional_data":{"time_on_data":79,"percent_viewed":39.7,"product_id":557246,"price":417.97}}`, i%7, i, i)
	if bad {
		data = fmt.Sprintf(`{"user_id":"%d","event_name":"Search","marker":"bad-%06d"}`, i%7, i)
	}
	return consumer.Record{ShardID: testShard, SequenceNumber: seq(i), Data: []byte(data), ArrivedAt: at}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func retryFast() retry.Backoff {
	return retry.Backoff{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond}
}

func derived(seq string) string { return messages.DerivedClickID(testShard, seq, 0) }

// proxy forwards TCP connections to target until down closes its listener and every connection; up
// listens again on the same address. It stands in for an S3 endpoint that becomes unreachable.
type proxy struct {
	t      testing.TB
	addr   string
	target string
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]bool
	wg     sync.WaitGroup
}

func newProxy(t testing.TB, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, addr: ln.Addr().String(), target: target, conns: map[net.Conn]bool{}}
	p.serve(ln)
	t.Cleanup(func() { p.down(); p.wg.Wait() })
	return p
}

func (p *proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[u] = true, true
			p.mu.Unlock()
			p.wg.Go(func() { _, _ = io.Copy(u, c); u.Close() })
			p.wg.Go(func() { _, _ = io.Copy(c, u); c.Close() })
		}
	})
}

func (p *proxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]bool{}
}

func (p *proxy) up() {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("listen again on %s: %v", p.addr, err)
	}
	p.serve(ln)
}
