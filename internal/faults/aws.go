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
// header, or S3's XML <Error>. The SDK's standard retryer treats all but AccessDenied as retryable, and
// the first three (and SlowDown) as throttling.
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
	// Entries fails single entries of Kinesis PutRecords calls instead of whole calls: each entry fails
	// with probability Fraction, answered with Kind as its ErrorCode, while the call itself succeeds and
	// its other entries are stored — a partial failure, answered as Kinesis answers one. Kind
	// must be ThroughputExceeded or InternalFailure (the codes Kinesis gives an entry), and Operations
	// empty or just "PutRecords"; every other call is forwarded untouched. The forwarded call carries
	// only the other entries, so its SigV4 signature no longer matches its body: fine for the local
	// emulators, which do not verify signatures. Default: false (whole calls).
	Entries bool
}

func (f Fault) validate() error {
	if !slices.Contains(Kinds, f.Kind) {
		return fmt.Errorf("faults: unknown error kind %q", f.Kind)
	}
	if f.Fraction <= 0 || f.Fraction > 1 {
		return fmt.Errorf("faults: fraction %v not in (0, 1]", f.Fraction)
	}
	if f.Entries {
		if f.Kind != ThroughputExceeded && f.Kind != InternalFailure {
			return fmt.Errorf("faults: Entries with kind %q: an entry of PutRecords fails with %s or %s only", f.Kind, ThroughputExceeded, InternalFailure)
		}
		if len(f.Operations) > 1 || (len(f.Operations) == 1 && f.Operations[0] != putRecords) {
			return fmt.Errorf("faults: Entries with operations %v: only PutRecords has entries", f.Operations)
		}
	}
	return nil
}

// Reply is an error answer an AWSLayer gives a set number of calls instead of the server's: any HTTP
// status and AWS error code (S3's 409 ConditionalRequestConflict, say), in the wire shape of the call's
// service. Queue it with AWSLayer.Reply.
type Reply struct {
	// Status is the HTTP status, 400–599. Required.
	Status int
	// Code is the AWS error code (S3's <Code>; for Kinesis and DynamoDB the __type, which for DynamoDB
	// gets its namespace). Required.
	Code string
	// Message is the error message. Default: "injected by the fault layer".
	Message string
	// Count is how many matching calls get the answer, at least 1. Required.
	Count int
	// Operations limits the answer to these operations (as Fault.Operations); empty: every call.
	Operations []string
	// Forward sends each answered call on to the server first and throws the server's answer away: the
	// call took effect, but the client is told it failed. Default: the call never reaches the server.
	Forward bool
}

func (r Reply) validate() error {
	switch {
	case r.Status < 400 || r.Status > 599:
		return fmt.Errorf("faults: reply status %d not in 400–599", r.Status)
	case r.Code == "":
		return errors.New("faults: reply without an error code")
	case r.Count < 1:
		return fmt.Errorf("faults: reply count %d, want at least 1", r.Count)
	}
	return nil
}

func (r *Reply) matches(op string) bool {
	return len(r.Operations) == 0 || slices.Contains(r.Operations, op)
}

func (r *Reply) answer(req *http.Request) answer {
	a := answer{status: r.Status, code: r.Code, msg: r.Message}
	if a.msg == "" {
		a.msg = "injected by the fault layer"
	}
	if isDynamoDB(req) {
		a.typ = dynamoNamespace + r.Code
	}
	return a
}

// Second is what an AWSLayer saw of one operation in one second.
type Second struct {
	Unix    int64 // the second, Unix time
	Calls   int   // every call that arrived, faulted or not
	Faulted int   // calls answered with the fault (Fault.Entries: calls with at least one failed entry)
	Entries int   // entries failed (Fault.Entries)
}

// AWSLayer is an HTTP reverse proxy in front of one AWS endpoint (an emulator) that fails a fraction of
// calls with AWS's own throttling and server errors, and counts calls per operation and second. The
// zero value is not usable: call NewAWSLayer. Methods are safe for concurrent use.
type AWSLayer struct {
	proxy    *httputil.ReverseProxy
	upstream *url.URL

	mu      sync.Mutex
	fault   *Fault
	replies []*Reply // queued, served first to last; each removed when its Count is spent
	rnd     *rand.Rand
	counts  map[string]map[int64]*Second // operation → second → counts
	totals  map[string]*Second           // operation → counts since the start (Unix unset)
	now     func() time.Time

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
			if failedEntriesOf(r.Out.Context()) != nil {
				r.Out.Header.Del("Accept-Encoding") // the answer is rewritten: take it uncompressed
			}
		},
		ModifyResponse: mergeEntries,
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

// Reply queues r: the next r.Count calls that match it get its answer instead of the server's, ahead of
// any Fault; replies queued earlier are served first. A call answered so counts as faulted.
func (l *AWSLayer) Reply(r Reply) error {
	if err := r.validate(); err != nil {
		return err
	}
	r.Operations = slices.Clone(r.Operations)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.replies = append(l.replies, &r)
	return nil
}

// Pending returns how many queued reply answers are still to be given.
func (l *AWSLayer) Pending() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.replies {
		n += r.Count
	}
	return n
}

// takeReply spends one answer of the first queued reply matching op; nil when none matches. l.mu is held.
func (l *AWSLayer) takeReply(op string) *Reply {
	for i, r := range l.replies {
		if !r.matches(op) {
			continue
		}
		if r.Count--; r.Count == 0 {
			l.replies = slices.Delete(l.replies, i, i+1)
		}
		return r
	}
	return nil
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

// ServeHTTP forwards r upstream, or answers it with a queued reply or the fault.
func (l *AWSLayer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op := Operation(r)
	if f := l.entriesFault(op); f != nil {
		l.serveEntries(w, r, f)
		return
	}
	reply, fault := l.decide(op)
	switch {
	case reply != nil:
		if reply.Forward {
			l.proxy.ServeHTTP(discard{header: http.Header{}}, r)
		}
		writeAnswer(w, r, reply.answer(r))
	case fault != nil:
		writeAnswer(w, r, kindAnswer(r, fault.Kind))
	default:
		l.proxy.ServeHTTP(w, r)
	}
}

// entriesFault returns the fault when it fails single entries of op's calls (Fault.Entries, PutRecords):
// those calls are counted and answered by serveEntries.
func (l *AWSLayer) entriesFault(op string) *Fault {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.fault
	if f == nil || !f.Entries || op != putRecords || (len(f.Operations) > 0 && !slices.Contains(f.Operations, op)) {
		return nil
	}
	s, tot := l.count(op)
	s.Calls++
	tot.Calls++
	return f
}

// count returns op's counts of this second and since the start; l.mu is held.
func (l *AWSLayer) count(op string) (sec, total *Second) {
	unix := l.now().Unix()
	byOp := l.counts[op]
	if byOp == nil {
		byOp = map[int64]*Second{}
		l.counts[op] = byOp
	}
	s := byOp[unix]
	if s == nil {
		s = &Second{Unix: unix}
		byOp[unix] = s
	}
	tot := l.totals[op]
	if tot == nil {
		tot = &Second{}
		l.totals[op] = tot
	}
	return s, tot
}

// decide counts a call of op and says how to answer it: with a queued reply, the fault, or (both nil)
// the server's answer.
func (l *AWSLayer) decide(op string) (*Reply, *Fault) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, tot := l.count(op)
	s.Calls++
	tot.Calls++
	reply := l.takeReply(op)
	var fault *Fault
	if f := l.fault; reply == nil && f != nil && !f.Entries && (len(f.Operations) == 0 || slices.Contains(f.Operations, op)) && l.rnd.Float64() < f.Fraction {
		fault = f
	}
	if reply != nil || fault != nil {
		s.Faulted++
		tot.Faulted++
	}
	return reply, fault
}

// discard is the ResponseWriter of a forwarded call whose answer is replaced: it throws it away.
type discard struct{ header http.Header }

func (d discard) Header() http.Header         { return d.header }
func (d discard) Write(b []byte) (int, error) { return len(b), nil }
func (d discard) WriteHeader(int)             {}
func (d discard) Flush()                      {}

// answer is one error answer: the HTTP status, the error code and message and, for the JSON protocols,
// the __type (the code when empty).
type answer struct {
	status         int
	code, msg, typ string
}

// isS3 says r is an S3 call (REST-XML: no X-Amz-Target).
func isS3(r *http.Request) bool { return r.Header.Get("X-Amz-Target") == "" }

// isDynamoDB says r is a DynamoDB call (JSON 1.0, whose __type carries a namespace).
func isDynamoDB(r *http.Request) bool {
	return strings.HasPrefix(r.Header.Get("X-Amz-Target"), "DynamoDB_")
}

// kindAnswer is kind as r's service sends it.
func kindAnswer(r *http.Request, kind Kind) answer {
	a := answer{status: http.StatusBadRequest, code: string(kind)}
	switch kind {
	case InternalFailure:
		a.status = http.StatusInternalServerError
	case ServiceUnavailable:
		a.status = http.StatusServiceUnavailable
	}
	if isS3(r) {
		a.msg = "injected by the fault layer"
		switch kind {
		case ServiceUnavailable:
			a.code, a.msg = "SlowDown", "Please reduce your request rate."
		case InternalFailure:
			a.code, a.msg = "InternalError", "We encountered an internal error. Please try again."
		case AccessDenied:
			a.status, a.code, a.msg = http.StatusForbidden, "AccessDenied", "Access Denied (injected)"
		}
		return a
	}
	dynamo := isDynamoDB(r)
	switch kind {
	case ThroughputExceeded:
		a.msg = "Rate exceeded for shard in stream under account (injected)."
		if dynamo {
			a.msg = "The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API. (injected)"
		}
	case LimitExceeded:
		a.msg = "Rate exceeded (injected)."
	case Throttling:
		a.msg = "Rate of requests exceeds the allowed throughput. (injected)"
	case InternalFailure:
		a.msg = "The request processing has failed because of an unknown error, exception or failure. (injected)"
		if dynamo {
			a.code, a.msg = "InternalServerError", "Internal server error (injected)"
		}
	case ServiceUnavailable:
		a.msg = "The request has failed due to a temporary failure of the server. (injected)"
	case AccessDenied:
		a.msg = "User is not authorized to perform this action (injected)."
	}
	if dynamo {
		switch kind {
		case Throttling:
			a.typ = "com.amazon.coral.availability#" + a.code
		case ServiceUnavailable, AccessDenied:
			a.typ = "com.amazon.coral.service#" + a.code
		default:
			a.typ = dynamoNamespace + a.code
		}
	}
	return a
}

// dynamoNamespace prefixes DynamoDB's own exceptions' __type.
const dynamoNamespace = "com.amazonaws.dynamodb.v20120810#"

// writeAnswer answers r with a in the wire shape of r's service: S3's XML <Error>, or JSON 1.1 (Kinesis)
// or 1.0 (DynamoDB) with an X-Amzn-ErrorType header.
func writeAnswer(w http.ResponseWriter, r *http.Request, a answer) {
	w.Header().Set("X-Amzn-RequestId", "faults-injected")
	if isS3(r) {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(a.status)
		if r.Method != http.MethodHead {
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+`<Error><Code>%s</Code><Message>%s</Message><RequestId>faults-injected</RequestId></Error>`, a.code, a.msg)
		}
		return
	}
	ctype, typ := "application/x-amz-json-1.1", a.typ
	if isDynamoDB(r) {
		ctype = "application/x-amz-json-1.0"
	}
	if typ == "" {
		typ = a.code
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("X-Amzn-ErrorType", a.code)
	w.WriteHeader(a.status)
	fmt.Fprintf(w, `{"__type":%q,"message":%q}`, typ, a.msg)
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

// FailedEntries returns how many entries of op's calls the layer failed since it was made (Fault.Entries).
func (l *AWSLayer) FailedEntries(op string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t := l.totals[op]; t != nil {
		return t.Entries
	}
	return 0
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
