package efoproxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	"go.uber.org/zap"
)

// DefaultFirstEventWait is Config.FirstEventWait's default.
const DefaultFirstEventWait = 500 * time.Millisecond

// Config configures a Proxy.
type Config struct {
	// Upstream is kinesis-mock's TLS endpoint, e.g. https://127.0.0.1:4567. Required.
	Upstream string
	// RootCAs verifies the upstream's certificate (the one MakeCertificate wrote). Required.
	RootCAs *x509.CertPool
	// EndAfter ends every subscription this long after it started, cleanly, as Kinesis does after five
	// minutes. Default: 0, never (kinesis-mock ends them itself after five minutes).
	EndAfter time.Duration
	// FirstEventWait is how long a new subscription waits for kinesis-mock's first event, to answer an
	// exception that comes first with HTTP 400; after it, `initial-response` is sent. Default: 500ms.
	FirstEventWait time.Duration
	// Logger receives a line per subscription and per control call. Default: zap.NewNop().
	Logger *zap.Logger
}

// How says how End ends a subscription.
type How string

// The ways End ends a subscription.
const (
	// Clean ends the event stream as Kinesis does after five minutes: the SDK's event channel closes
	// and its Err is nil.
	Clean How = "clean"
	// Reset resets the HTTP/2 stream, as a broken connection would: the SDK's Err is not nil.
	Reset How = "reset"
)

// errReset is what a reset subscription's client stream ends with.
var errReset = errors.New("efoproxy: subscription reset")

// Proxy is an http.Handler in front of kinesis-mock's TLS port; see the package documentation. Its
// methods are safe for concurrent use.
type Proxy struct {
	cfg Config
	rp  *httputil.ReverseProxy
	log *zap.Logger

	mu     sync.Mutex
	open   map[*subscription]struct{}
	opened map[string]int // consumer name → subscriptions opened
}

// subscription is one SubscribeToShard call passing through.
type subscription struct {
	consumer, shard string
	end             chan How // End's request; buffered 1
}

type subKey struct{}

// New returns a Proxy for cfg. It does no I/O.
func New(cfg Config) (*Proxy, error) {
	target, err := url.Parse(cfg.Upstream)
	if err != nil || target.Scheme != "https" || target.Host == "" {
		return nil, fmt.Errorf("efoproxy: upstream %q is not an https:// URL (kinesis-mock's TLS port)", cfg.Upstream)
	}
	if cfg.RootCAs == nil {
		return nil, errors.New("efoproxy: RootCAs is required to verify the upstream's certificate")
	}
	if cfg.FirstEventWait <= 0 {
		cfg.FirstEventWait = DefaultFirstEventWait
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	p := &Proxy{cfg: cfg, log: cfg.Logger, open: map[*subscription]struct{}{}, opened: map[string]int{}}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = r.In.Host // the SDK signed the host it called
		},
		Transport:      &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cfg.RootCAs}, ForceAttemptHTTP2: true},
		FlushInterval:  -1,
		ModifyResponse: p.modifyResponse,
	}
	return p, nil
}

// ServeHTTP serves the control paths (/-/end, /-/subscriptions) and passes everything else to kinesis-mock.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/-/end":
		p.serveEnd(w, r)
	case "/-/subscriptions":
		p.serveCount(w, r)
	default:
		p.forward(w, r)
	}
}

// End ends the open subscriptions of the stream consumer named consumer (every consumer when empty) the
// way how says, and returns how many it ended.
func (p *Proxy) End(consumer string, how How) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for s := range p.open {
		if consumer != "" && s.consumer != consumer {
			continue
		}
		select {
		case s.end <- how:
			n++
		default: // already being ended
		}
	}
	return n
}

// Count returns how many subscriptions of the consumer were opened so far and how many are open now.
func (p *Proxy) Count(consumer string) (opened, open int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for s := range p.open {
		if s.consumer == consumer {
			open++
		}
	}
	return p.opened[consumer], open
}

func (p *Proxy) serveEnd(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST /-/end?consumer=NAME[&how=clean|reset]", http.StatusMethodNotAllowed)
		return
	}
	how := How(r.URL.Query().Get("how"))
	switch how {
	case "":
		how = Clean
	case Clean, Reset:
	default:
		http.Error(w, "how must be clean or reset", http.StatusBadRequest)
		return
	}
	consumer := r.URL.Query().Get("consumer")
	n := p.End(consumer, how)
	p.log.Info("subscriptions ended on request", zap.String("consumer", consumer), zap.String("how", string(how)), zap.Int("ended", n))
	writeJSON(w, map[string]int{"ended": n})
}

func (p *Proxy) serveCount(w http.ResponseWriter, r *http.Request) {
	opened, open := p.Count(r.URL.Query().Get("consumer"))
	writeJSON(w, map[string]int{"opened": opened, "open": open})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// forward passes a call to kinesis-mock; a SubscribeToShard call carries its subscription in the context,
// for modifyResponse.
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request) {
	if strings.HasSuffix(r.Header.Get("X-Amz-Target"), ".SubscribeToShard") {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "reading the request: "+err.Error(), http.StatusBadRequest)
			return
		}
		var in struct{ ConsumerARN, ShardId string }
		_ = json.Unmarshal(body, &in) // kinesis-mock judges the request; the names only label it here
		r.Body = io.NopCloser(bytes.NewReader(body))
		sub := &subscription{consumer: consumerName(in.ConsumerARN), shard: in.ShardId, end: make(chan How, 1)}
		r = r.WithContext(context.WithValue(r.Context(), subKey{}, sub))
	}
	p.rp.ServeHTTP(w, r)
}

// consumerName is the name in a consumer ARN (…:stream/<stream>/consumer/<name>:<creation time>).
func consumerName(arn string) string {
	_, rest, ok := strings.Cut(arn, "/consumer/")
	if !ok {
		return arn
	}
	if i := strings.LastIndex(rest, ":"); i >= 0 {
		return rest[:i]
	}
	return rest
}

// modifyResponse rewrites a SubscribeToShard answer: an exception that comes first becomes HTTP 400, and
// otherwise `initial-response` goes before the events.
func (p *Proxy) modifyResponse(resp *http.Response) error {
	sub, ok := resp.Request.Context().Value(subKey{}).(*subscription)
	if !ok || resp.StatusCode != http.StatusOK {
		return nil
	}
	frames, decErr, done := decodeFrames(resp.Body)
	var first *eventstream.Message
	t := time.NewTimer(p.cfg.FirstEventWait)
	defer t.Stop()
	select {
	case m := <-frames:
		first = &m
	case err := <-decErr:
		close(done)
		return fmt.Errorf("efoproxy: subscription of %s to %s ended before its first event: %w", sub.consumer, sub.shard, err)
	case <-t.C:
	}
	if first != nil && header(*first, ":message-type") == "exception" {
		close(done)
		_ = resp.Body.Close()
		asErrorAnswer(resp, *first)
		p.log.Info("subscription refused", zap.String("consumer", sub.consumer), zap.String("shard_id", sub.shard), zap.String("error", header(*first, ":exception-type")))
		return nil
	}
	pr, pw := io.Pipe()
	upstream := resp.Body
	resp.Body = pr
	resp.Header.Del("Content-Length")
	resp.ContentLength = -1
	p.add(sub)
	go p.pump(sub, upstream, pw, first, frames, decErr, done)
	return nil
}

// decodeFrames reads event stream messages from body in a goroutine, one at a time: the next is read
// only once the previous was taken. It stops at the first error (reported on decErr) or when done closes.
func decodeFrames(body io.Reader) (frames <-chan eventstream.Message, decErr <-chan error, done chan struct{}) {
	out := make(chan eventstream.Message)
	errc := make(chan error, 1)
	done = make(chan struct{})
	go func() {
		br := bufio.NewReader(body)
		dec := eventstream.NewDecoder()
		for {
			m, err := dec.Decode(br, nil)
			if err != nil {
				errc <- err
				return
			}
			select {
			case out <- m:
			case <-done:
				return
			}
		}
	}()
	return out, errc, done
}

// asErrorAnswer turns resp into the HTTP 400 JSON error Kinesis answers with, from an exception message.
func asErrorAnswer(resp *http.Response, exc eventstream.Message) {
	var payload struct {
		Message string `json:"message"`
	}
	_ = json.Unmarshal(exc.Payload, &payload)
	body, _ := json.Marshal(map[string]string{"__type": header(exc, ":exception-type"), "message": payload.Message})
	resp.StatusCode, resp.Status = http.StatusBadRequest, "400 Bad Request"
	resp.Header = http.Header{}
	resp.Header.Set("Content-Type", "application/x-amz-json-1.1")
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	resp.ContentLength = int64(len(body))
	resp.Body = io.NopCloser(bytes.NewReader(body))
}

// pump writes `initial-response`, then the upstream's events, to the client's stream until one side ends
// or the subscription is ended (End, Config.EndAfter).
func (p *Proxy) pump(sub *subscription, upstream io.Closer, pw *io.PipeWriter, first *eventstream.Message,
	frames <-chan eventstream.Message, decErr <-chan error, done chan struct{}) {
	defer p.remove(sub)
	defer close(done)
	defer upstream.Close()
	enc := eventstream.NewEncoder()
	if err := enc.Encode(pw, initialResponse()); err != nil {
		pw.CloseWithError(err)
		return
	}
	if first != nil {
		if err := enc.Encode(pw, *first); err != nil {
			pw.CloseWithError(err)
			return
		}
	}
	var endAfter <-chan time.Time
	if p.cfg.EndAfter > 0 {
		t := time.NewTimer(p.cfg.EndAfter)
		defer t.Stop()
		endAfter = t.C
	}
	for {
		select {
		case m := <-frames:
			if err := enc.Encode(pw, m); err != nil {
				pw.CloseWithError(err) // the client went away
				return
			}
		case err := <-decErr:
			if errors.Is(err, io.EOF) {
				err = nil // kinesis-mock ended it (after five minutes): a clean end
			}
			p.ended(sub, "upstream", err)
			pw.CloseWithError(err)
			return
		case how := <-sub.end:
			p.ended(sub, string(how), nil)
			if how == Reset {
				pw.CloseWithError(errReset)
			} else {
				pw.Close()
			}
			return
		case <-endAfter:
			p.ended(sub, "end-after", nil)
			pw.Close()
			return
		}
	}
}

// initialResponse is the event Kinesis sends first on a subscription: its (empty) output members.
func initialResponse() eventstream.Message {
	var m eventstream.Message
	m.Headers.Set(":message-type", eventstream.StringValue("event"))
	m.Headers.Set(":event-type", eventstream.StringValue("initial-response"))
	m.Headers.Set(":content-type", eventstream.StringValue("application/json"))
	m.Payload = []byte("{}")
	return m
}

func header(m eventstream.Message, name string) string {
	if v := m.Headers.Get(name); v != nil {
		return v.String()
	}
	return ""
}

func (p *Proxy) add(sub *subscription) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.open[sub] = struct{}{}
	p.opened[sub.consumer]++
	p.log.Info("subscription opened", zap.String("consumer", sub.consumer), zap.String("shard_id", sub.shard))
}

func (p *Proxy) remove(sub *subscription) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.open, sub)
}

func (p *Proxy) ended(sub *subscription, by string, err error) {
	p.log.Info("subscription ended", zap.String("consumer", sub.consumer), zap.String("shard_id", sub.shard), zap.String("by", by), zap.Error(err))
}
