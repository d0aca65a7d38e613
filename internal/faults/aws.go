package faults

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// Kind is an error the AWS layer answers with.
type Kind string

// The errors an AWSLayer can answer with. Each is sent in the wire shape of the service the call was
// for: JSON 1.1 (Kinesis) or 1.0 (DynamoDB, whose __type carries its namespace) with an X-Amzn-ErrorType
// header, or S3's XML <Error>. The SDK's standard retryer treats all but AccessDenied as retryable, and the
// first three (and SlowDown) as throttling.
const (
	// ThroughputExceeded is HTTP 400 ProvisionedThroughputExceededException: Kinesis' per-shard read and
	// write limits, DynamoDB's table capacity.
	ThroughputExceeded Kind = "ProvisionedThroughputExceededException"
	// LimitExceeded is HTTP 400 LimitExceededException: Kinesis' control-plane call rates
	// (ListShards, GetShardIterator, DescribeStreamSummary …).
	LimitExceeded Kind = "LimitExceededException"
	// Throttling is HTTP 400 ThrottlingException: DynamoDB's (and AWS's common) request-rate throttle.
	Throttling Kind = "ThrottlingException"
	// InternalFailure is HTTP 500 InternalFailure (DynamoDB: InternalServerError).
	InternalFailure Kind = "InternalFailure"
	// ServiceUnavailable is HTTP 503 ServiceUnavailable (S3: SlowDown).
	ServiceUnavailable Kind = "ServiceUnavailable"
	// AccessDenied is HTTP 400 AccessDeniedException (S3: 403 AccessDenied): a call the caller's IAM policy
	// does not allow. Unlike the others it is permanent: it repeats on every attempt.
	AccessDenied Kind = "AccessDeniedException"
)

// Kinds lists every Kind, for validation and schedules.
var Kinds = []Kind{ThroughputExceeded, LimitExceeded, Throttling, InternalFailure, ServiceUnavailable, AccessDenied}

// Fault says which calls an AWSLayer fails and how.
type Fault struct {
	// Kind is the error answered. Required.
	Kind Kind
	// Fraction of matching calls answered with the error, in (0, 1]. Required.
	Fraction float64
	// Operations limits the fault to these operations (the X-Amz-Target action, e.g. "GetRecords" or
	// "UpdateItem"; for S3 the HTTP method, e.g. "PUT"); empty: every call.
	Operations []string
}

func (f Fault) validate() error {
	if !slices.Contains(Kinds, f.Kind) {
		return fmt.Errorf("faults: unknown error kind %q", f.Kind)
	}
	if f.Fraction <= 0 || f.Fraction > 1 {
		return fmt.Errorf("faults: fraction %v not in (0, 1]", f.Fraction)
	}
	return nil
}

// Second is what an AWSLayer saw of one operation in one second.
type Second struct {
	Unix    int64 // the second, Unix time
	Calls   int   // every call that arrived, faulted or not
	Faulted int   // calls answered with the fault
}

// AWSLayer is an HTTP reverse proxy in front of one AWS endpoint (an emulator) that fails a fraction of
// calls with AWS's own throttling and server errors, and counts calls per operation and second. The
// zero value is not usable: call NewAWSLayer. Methods are safe for concurrent use.
type AWSLayer struct {
	proxy    *httputil.ReverseProxy
	upstream *url.URL

	mu     sync.Mutex
	fault  *Fault
	rnd    *rand.Rand
	counts map[string]map[int64]*Second // operation → second → counts
	totals map[string]*Second           // operation → counts since the start (Unix unset)
	now    func() time.Time

	srv *http.Server
	ln  net.Listener
}

// NewAWSLayer returns a layer forwarding to upstream (an http:// endpoint URL) that draws which calls to
// fail from seed; it does no I/O.
func NewAWSLayer(upstream string, seed uint64) (*AWSLayer, error) {
	u, err := url.Parse(upstream)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("faults: upstream %q is not an http(s) URL", upstream)
	}
	l := &AWSLayer{upstream: u, rnd: rand.New(rand.NewPCG(seed, 0x5eed)), counts: map[string]map[int64]*Second{}, totals: map[string]*Second{}, now: time.Now}
	l.proxy = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.Out.Host = r.In.Host // SigV4 signed the client's Host; the emulators ignore it either way
		},
		// No transparent gzip: DynamoDB's X-Amz-Crc32 covers the bytes as sent.
		Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second, DisableCompression: true},
		// An upstream failure (a reset below this layer, say) becomes a 502, which the SDK retries.
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	return l, nil
}

// Set makes f the layer's fault, replacing any other.
func (l *AWSLayer) Set(f Fault) error {
	if err := f.validate(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fault = &f
	return nil
}

// Clear removes the fault: every call is forwarded.
func (l *AWSLayer) Clear() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fault = nil
}

// Operation names a call as Fault.Operations and Counts do: the action of its X-Amz-Target header
// ("Kinesis_20131202.GetRecords" → "GetRecords"), or for a call without one (S3) its HTTP method.
func Operation(r *http.Request) string {
	if t := r.Header.Get("X-Amz-Target"); t != "" {
		if i := strings.LastIndexByte(t, '.'); i >= 0 {
			return t[i+1:]
		}
		return t
	}
	return r.Method
}

// ServeHTTP forwards r upstream, or answers it with the fault.
func (l *AWSLayer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op := Operation(r)
	l.mu.Lock()
	sec := l.now().Unix()
	byOp := l.counts[op]
	if byOp == nil {
		byOp = map[int64]*Second{}
		l.counts[op] = byOp
	}
	s := byOp[sec]
	if s == nil {
		s = &Second{Unix: sec}
		byOp[sec] = s
	}
	tot := l.totals[op]
	if tot == nil {
		tot = &Second{}
		l.totals[op] = tot
	}
	s.Calls++
	tot.Calls++
	var fault *Fault
	if f := l.fault; f != nil && (len(f.Operations) == 0 || slices.Contains(f.Operations, op)) && l.rnd.Float64() < f.Fraction {
		fault = f
		s.Faulted++
		tot.Faulted++
	}
	l.mu.Unlock()
	if fault == nil {
		l.proxy.ServeHTTP(w, r)
		return
	}
	writeError(w, r, fault.Kind)
}

// writeError answers r with kind in the wire shape of r's service.
func writeError(w http.ResponseWriter, r *http.Request, kind Kind) {
	status := http.StatusBadRequest
	switch kind {
	case InternalFailure:
		status = http.StatusInternalServerError
	case ServiceUnavailable:
		status = http.StatusServiceUnavailable
	case AccessDenied:
		if r.Header.Get("X-Amz-Target") == "" {
			status = http.StatusForbidden // S3
		}
	}
	w.Header().Set("X-Amzn-RequestId", "faults-injected")
	target := r.Header.Get("X-Amz-Target")
	if target == "" { // S3: REST-XML
		code, msg := string(kind), "injected by the fault layer"
		switch kind {
		case ServiceUnavailable:
			code, msg = "SlowDown", "Please reduce your request rate."
		case InternalFailure:
			code, msg = "InternalError", "We encountered an internal error. Please try again."
		case AccessDenied:
			code, msg = "AccessDenied", "Access Denied (injected)"
		}
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(status)
		if r.Method != http.MethodHead {
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+`<Error><Code>%s</Code><Message>%s</Message><RequestId>faults-injected</RequestId></Error>`, code, msg)
		}
		return
	}
	code, msg, ctype := string(kind), "", "application/x-amz-json-1.1"
	dynamo := strings.HasPrefix(target, "DynamoDB_")
	switch kind {
	case ThroughputExceeded:
		msg = "Rate exceeded for shard in stream under account (injected)."
		if dynamo {
			msg = "The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API. (injected)"
		}
	case LimitExceeded:
		msg = "Rate exceeded (injected)."
	case Throttling:
		msg = "Rate of requests exceeds the allowed throughput. (injected)"
	case InternalFailure:
		msg = "The request processing has failed because of an unknown error, exception or failure. (injected)"
		if dynamo {
			code, msg = "InternalServerError", "Internal server error (injected)"
		}
	case ServiceUnavailable:
		msg = "The request has failed due to a temporary failure of the server. (injected)"
	case AccessDenied:
		msg = "User is not authorized to perform this action (injected)."
	}
	typ := code
	if dynamo {
		ctype = "application/x-amz-json-1.0"
		switch kind {
		case Throttling:
			typ = "com.amazon.coral.availability#" + code
		case ServiceUnavailable, AccessDenied:
			typ = "com.amazon.coral.service#" + code
		default:
			typ = "com.amazonaws.dynamodb.v20120810#" + code
		}
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("X-Amzn-ErrorType", code)
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"__type":%q,"message":%q}`, typ, msg)
}

// Counts returns what the layer saw of operation op in each second from from to to (inclusive, Unix
// seconds), seconds without calls included as zeros.
func (l *AWSLayer) Counts(op string, from, to time.Time) []Second {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Second
	for s := from.Unix(); s <= to.Unix(); s++ {
		if c := l.counts[op][s]; c != nil {
			out = append(out, *c)
		} else {
			out = append(out, Second{Unix: s})
		}
	}
	return out
}

// Operations returns the operations the layer has seen, sorted.
func (l *AWSLayer) Operations() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]string, 0, len(l.totals))
	for op := range l.totals {
		out = append(out, op)
	}
	slices.Sort(out)
	return out
}

// Total returns op's calls and faulted calls since the layer was made.
func (l *AWSLayer) Total(op string) (calls, faulted int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t := l.totals[op]; t != nil {
		return t.Calls, t.Faulted
	}
	return 0, 0
}

// Rate returns op's calls per second (op "": every operation's) over the whole seconds from from up to
// to: the total divided by the span.
func (l *AWSLayer) Rate(op string, from, to time.Time) (calls, faulted float64) {
	span := float64(to.Unix() - from.Unix())
	if span <= 0 {
		return 0, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var c, f int
	for name, byOp := range l.counts {
		if op != "" && name != op {
			continue
		}
		for s := from.Unix(); s < to.Unix(); s++ {
			if x := byOp[s]; x != nil {
				c += x.Calls
				f += x.Faulted
			}
		}
	}
	return float64(c) / span, float64(f) / span
}

// Listen starts serving on addr (host:port; port 0 picks a free one) and returns the address. Close
// stops it.
func (l *AWSLayer) Listen(addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("faults: AWS layer on %s: %w", addr, err)
	}
	l.mu.Lock()
	l.ln, l.srv = ln, &http.Server{Handler: l, ReadHeaderTimeout: 30 * time.Second}
	srv := l.srv
	l.mu.Unlock()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			_ = err // the listener failed; callers see connection errors
		}
	}()
	return ln.Addr().String(), nil
}

// Close stops serving and closes open connections. It is idempotent.
func (l *AWSLayer) Close() error {
	l.mu.Lock()
	srv := l.srv
	l.srv = nil
	l.mu.Unlock()
	if srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		return srv.Close()
	}
	return nil
}
