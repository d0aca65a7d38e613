package ingest_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/clickfleet/clickfleet/internal/testenv"
	"github.com/clickfleet/clickfleet/messages"
)

// The load both benchmarks apply: benchClients concurrent clients, each sending batches of a given size,
// b.N events in all, against a fresh 4-shard stream on the configured emulator.
const benchClients = 16

var benchBatchSizes = []int{1, 10, 100}

// runLoad spreads n events over benchClients goroutines calling send with batches of size events, and
// reports events/s and the per-call latency percentiles.
func runLoad(b *testing.B, size int, send func(ctx context.Context, batch []string) error) {
	evs := pocEvents("bench", 1000)
	var next atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	b.ResetTimer()
	began := time.Now()
	var wg sync.WaitGroup
	for range benchClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for {
				start := next.Add(int64(size)) - int64(size)
				if start >= int64(b.N) {
					break
				}
				n := min(int64(size), int64(b.N)-start)
				batch := make([]string, n)
				for i := range batch {
					batch[i] = evs[(start+int64(i))%int64(len(evs))]
				}
				t0 := time.Now()
				if err := send(context.Background(), batch); err != nil {
					b.Error(err)
					return
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	el := time.Since(began)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "events/s")
	if len(lat) > 0 {
		slices.Sort(lat)
		pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
		b.ReportMetric(pct(0.50), "p50-ms")
		b.ReportMetric(pct(0.99), "p99-ms")
	}
}

// BenchmarkPutRecordsDirect is the baseline: the clients call PutRecords themselves, one call per batch,
// retrying failed entries.
func BenchmarkPutRecordsDirect(b *testing.B) {
	kin := testenv.Kinesis(b)
	for _, size := range benchBatchSizes {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			stream := testenv.Stream(b, kin, 4)
			runLoad(b, size, func(ctx context.Context, batch []string) error {
				pending := batch
				for len(pending) > 0 {
					entries := make([]ktypes.PutRecordsRequestEntry, len(pending))
					for i, e := range pending {
						ev, err := messages.Decode([]byte(e)) // the same validation the ingest does
						if err != nil {
							return err
						}
						entries[i] = ktypes.PutRecordsRequestEntry{Data: []byte(e), PartitionKey: aws.String(ev.UserID)}
					}
					out, err := kin.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: &stream, Records: entries})
					if err != nil {
						return err
					}
					var again []string
					for i, r := range out.Records {
						if r.ErrorCode != nil {
							again = append(again, pending[i])
						}
					}
					pending = again
				}
				return nil
			})
		})
	}
}

// BenchmarkIngest applies the same load through a running ingest (loopback HTTP, NDJSON bodies), which
// coalesces the clients' requests into shared PutRecords calls.
func BenchmarkIngest(b *testing.B) {
	kin := testenv.Kinesis(b)
	for _, size := range benchBatchSizes {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			stream := testenv.Stream(b, kin, 4)
			cfg := testConfig(b, stream)
			cfg.RateLimit = 0
			h := start(b, cfg, kin)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchClients}}
			url := h.url + "/v1/events"
			runLoad(b, size, func(ctx context.Context, batch []string) error {
				for {
					req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(strings.Join(batch, "\n")))
					req.Header.Set("Content-Type", "application/x-ndjson")
					req.Header.Set("X-Api-Key", testKey)
					resp, err := client.Do(req)
					if err != nil {
						return err
					}
					var buf [4096]byte
					for {
						if _, err := resp.Body.Read(buf[:]); err != nil {
							break
						}
					}
					resp.Body.Close()
					switch resp.StatusCode {
					case http.StatusOK:
						return nil
					case http.StatusServiceUnavailable:
						continue
					default:
						return fmt.Errorf("status %d", resp.StatusCode)
					}
				}
			})
			b.ReportMetric(h.metric("clickfleet_ingest_putrecords_calls_total", "stream", "events", "result", "ok"), "putrecords-calls")
		})
	}
}

// BenchmarkIngestSlowClientFlood opens slowClients connections that each send headers and part of a body
// and then stall, and reports the server's extra heap and goroutines per stalled client while a normal
// request is still served. (Client and server share the process; the clients hold only raw sockets.)
func BenchmarkIngestSlowClientFlood(b *testing.B) {
	const slowClients = 1000
	kin := testenv.Kinesis(b)
	stream := testenv.Stream(b, kin, 1)
	for range b.N {
		cfg := testConfig(b, stream)
		cfg.ReadTimeout, cfg.MaxConnections = time.Minute, 2*slowClients
		h := start(b, cfg, kin)
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		g0 := runtime.NumGoroutine()
		addr := strings.TrimPrefix(h.url, "http://")
		conns := make([]net.Conn, 0, slowClients)
		part := strings.Repeat(pocEvents("slow", 1)[0]+"\n", 4) // ~1 KB of a promised 1 MB
		for range slowClients {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			fmt.Fprintf(c, "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\nX-Api-Key: %s\r\nContent-Length: 1000000\r\n\r\n%s", testKey, part)
			conns = append(conns, c)
		}
		testenv.WaitForState(b, fmt.Sprintf("%d slow clients' requests in flight", slowClients), 30*time.Second, func() (bool, string) {
			n := h.metric("clickfleet_ingest_inflight_requests")
			return n >= slowClients, fmt.Sprintf("clickfleet_ingest_inflight_requests %g", n)
		})
		if a := h.post(pocEvents("during", 1)[0], "application/json", testKey); a.status != 200 {
			b.Fatalf("request during the flood: %d %s", a.status, a.body)
		}
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(int64(after.HeapInuse)-int64(before.HeapInuse))/slowClients, "heap-bytes/slow-client")
		b.ReportMetric(float64(runtime.NumGoroutine()-g0)/slowClients, "goroutines/slow-client")
		b.ReportMetric(float64(after.Sys)/(1<<20), "sys-MiB")
		for _, c := range conns {
			c.Close()
		}
		if err := h.stop(); err != nil {
			b.Fatal(err)
		}
	}
}
