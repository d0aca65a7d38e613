package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/messages"
)

// KinesisAPI is the part of the Kinesis client the ingest uses: PutRecords for events and
// DescribeStreamSummary for /readyz.
type KinesisAPI interface {
	PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, opts ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error)
	DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, opts ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
}

// PutRecordsAPI is the part of [KinesisAPI] the batcher uses.
type PutRecordsAPI interface {
	PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, opts ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error)
}

// Options are a Server's collaborators; all are optional.
type Options struct {
	// Logger receives the server's logs (named "ingest"). Default: zap.NewNop().
	Logger *zap.Logger
	// Registerer receives the server's metrics. Default: a new registry of its own.
	Registerer prometheus.Registerer
	// Gatherer is what /metrics serves. Default: Registerer when it is a Gatherer, else the server's own
	// metrics only.
	Gatherer prometheus.Gatherer
	// Now is the clock for timestamp checks and token buckets. Default: time.Now.
	Now func() time.Time
}

// ErrServed is returned by Serve or Run on a Server that has already served.
var ErrServed = errors.New("ingest: server already served")

// Server is the ingest HTTP API. Create it with [New]; serve with [Server.Run] or [Server.Serve], once.
// Its handler is safe for concurrent use.
type Server struct {
	cfg     Config
	api     KinesisAPI
	log     *zap.Logger
	m       *metrics
	gath    prometheus.Gatherer
	now     func() time.Time
	limiter *limiter
	events  *batcher
	errs    *batcher
	handler http.Handler

	served   atomic.Bool
	stopping atomic.Bool

	readyMu  sync.Mutex
	readyAt  time.Time
	readyErr error
}

// New checks cfg and returns a Server that puts events on cfg.Stream through api. It does no I/O and
// starts nothing. Errors wrap ErrInvalidConfig, or come from registering metrics.
func New(cfg Config, api KinesisAPI, opts Options) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if api == nil {
		return nil, fmt.Errorf("%w: no Kinesis client", ErrInvalidConfig)
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	log = log.Named("ingest")
	reg, gath := opts.Registerer, opts.Gatherer
	if reg == nil {
		r := prometheus.NewRegistry()
		reg = r
		if gath == nil {
			gath = r
		}
	}
	if gath == nil {
		if g, ok := reg.(prometheus.Gatherer); ok {
			gath = g
		}
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("ingest metrics: %w", err)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	s := &Server{cfg: cfg, api: api, log: log, m: m, gath: gath, now: now}
	s.limiter = newLimiter(cfg.RateLimit, cfg.RateBurst, now)
	s.events = newBatcher(api, cfg.Stream, "events", &s.cfg, m, log)
	s.errs = newBatcher(api, cfg.ErrorStream, "errors", &s.cfg, m, log)
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/events", s.serveEvents)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.serveReady)
	if gath != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(gath, promhttp.HandlerOpts{}))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "not found: the API is POST /v1/events", nil)
	})
	s.handler = mux
	return s, nil
}

// Handler returns the server's HTTP handler. Events sent to it wait until Serve or Run is running.
func (s *Server) Handler() http.Handler { return s.handler }

// serveReady answers 200 when the stream (and, with InvalidToErrors, the error stream) answers
// DescribeStreamSummary, reusing a probe for ReadyCacheTTL; 503 otherwise or while stopping.
func (s *Server) serveReady(w http.ResponseWriter, r *http.Request) {
	if s.stopping.Load() {
		writeError(w, http.StatusServiceUnavailable, "stopping", nil)
		return
	}
	s.readyMu.Lock()
	defer s.readyMu.Unlock()
	if now := time.Now(); s.readyAt.IsZero() || now.Sub(s.readyAt) >= s.cfg.ReadyCacheTTL {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		s.readyErr = s.probe(ctx)
		cancel()
		s.readyAt = now
	}
	if s.readyErr != nil {
		writeError(w, http.StatusServiceUnavailable, s.readyErr.Error(), nil)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) probe(ctx context.Context) error {
	streams := []string{s.cfg.Stream}
	if s.cfg.InvalidToErrors {
		streams = append(streams, s.cfg.ErrorStream)
	}
	for _, st := range streams {
		if _, err := s.api.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(st)}); err != nil {
			s.log.Warn("not ready", zap.String("stream", st), zap.Error(err))
			return fmt.Errorf("stream %s: %s", st, failureReason(err))
		}
	}
	return nil
}

// eventResult is one event's line in a 200, 202 or 503 answer.
type eventResult struct {
	Index  int    `json:"index"`
	Status string `json:"status"` // stored, error_stream, failed
	// ClickID is a valid event's click_id: its own, or the one the ingest gave it (also when it failed,
	// so that a client sending it again with this id lets the consumer drop a copy stored after all).
	ClickID        string       `json:"click_id,omitempty"`
	ShardID        string       `json:"shard_id,omitempty"`
	SequenceNumber string       `json:"sequence_number,omitempty"`
	Reason         string       `json:"reason,omitempty"`
	Errors         []FieldError `json:"errors,omitempty"`
}

// Per-event statuses in answers.
const (
	StatusStored      = "stored"       // on the events stream
	StatusErrorStream = "error_stream" // invalid, on the error stream
	StatusFailed      = "failed"       // not stored: send it again
)

// Response is the body of a 200, 202 or 503 answer to POST /v1/events.
type Response struct {
	// Accepted counts events on the events stream.
	Accepted int `json:"accepted"`
	// ErrorStream counts invalid events put on the error stream.
	ErrorStream int `json:"error_stream"`
	// Failed counts events that are stored nowhere: the client must send them again.
	Failed int `json:"failed"`
	// Results has one entry per event, in request order.
	Results []eventResult `json:"results"`
}

// serveEvents answers /v1/events, counting the request and its status in the metrics.
func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request) {
	began := time.Now()
	s.m.inflight.Inc()
	defer s.m.inflight.Dec()
	sw := &statusWriter{ResponseWriter: w}
	defer func() {
		s.m.requests.WithLabelValues(strconv.Itoa(sw.status)).Inc()
		if r.Method == http.MethodPost {
			s.m.reqDuration.Observe(time.Since(began).Seconds())
		}
	}()
	s.handleEvents(sw, r)
}

// handleEvents is POST /v1/events as a sequence of steps; a step that ends the request has answered it
// and returns false.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	if s.cors(w, r) || !allowPost(w, r) {
		return
	}
	c, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	format, ok := s.acceptBody(w, r)
	if !ok || !s.withinLimits(w, r, c) {
		return
	}
	items, ok := s.readEvents(w, r, format)
	if !ok {
		return
	}
	s.limiter.take(c.index, len(items))
	if !s.acceptInvalid(w, items) || !s.assignIDs(w, items) {
		return
	}
	s.answerStored(w, c, items)
}

// caller is who sent a request: the index of its API key in Config.Keys and the key's name, or -1 and
// "anonymous".
type caller struct {
	index int
	name  string
}

// allowPost answers 405 to anything but POST.
func allowPost(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodPost {
		return true
	}
	w.Header().Set("Allow", "POST, OPTIONS")
	writeError(w, http.StatusMethodNotAllowed, "use POST", nil)
	return false
}

// authenticate finds the request's API key: 401 without one (unless AllowAnonymous), 403 for an unknown
// one.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (caller, bool) {
	key := r.Header.Get("X-Api-Key")
	switch {
	case key == "" && !s.cfg.AllowAnonymous:
		writeError(w, http.StatusUnauthorized, "missing x-api-key header", nil)
		return caller{}, false
	case key == "":
		return caller{index: -1, name: "anonymous"}, true
	}
	i, name, ok := s.cfg.Keys.Lookup(key)
	if !ok {
		s.log.Info("unknown API key", zap.String("remote", r.RemoteAddr))
		writeError(w, http.StatusForbidden, "unknown API key", nil)
		return caller{}, false
	}
	return caller{index: i, name: name}, true
}

// acceptBody returns the body's format: 415 for a compressed body or an unknown content type.
func (s *Server) acceptBody(w http.ResponseWriter, r *http.Request) (Format, bool) {
	if ce := r.Header.Get("Content-Encoding"); ce != "" && ce != "identity" {
		writeError(w, http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Encoding %q is not accepted: send the body uncompressed", ce), nil)
		return 0, false
	}
	format, err := FormatOf(r.Header.Get("Content-Type"))
	if err != nil {
		s.writeRequestError(w, err)
		return 0, false
	}
	return format, true
}

// withinLimits answers 429 (with Retry-After) past the caller's rate limit and 413 for a declared body
// over MaxRequestBytes.
func (s *Server) withinLimits(w http.ResponseWriter, r *http.Request, c caller) bool {
	if ok, wait := s.limiter.admit(c.index); !ok {
		secs := int64((wait + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
		writeError(w, http.StatusTooManyRequests, fmt.Sprintf("rate limit of %g events/s for key %s exceeded", s.cfg.RateLimit, c.name), nil)
		return false
	}
	if r.ContentLength > s.cfg.MaxRequestBytes {
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body of %d bytes is over the limit of %d", r.ContentLength, s.cfg.MaxRequestBytes), nil)
		return false
	}
	return true
}

// readEvents reads and decodes the body; a body that cannot be read or decoded is answered with its
// RequestError.
func (s *Server) readEvents(w http.ResponseWriter, r *http.Request, format Format) ([]Item, bool) {
	body, err := s.readBody(w, r)
	if err != nil {
		s.writeRequestError(w, err)
		return nil, false
	}
	items, err := DecodeRequest(body, format, Limits{
		MaxEvents: s.cfg.MaxEventsPerRequest, MaxEventBytes: s.cfg.MaxEventBytes,
		MaxClockSkew: s.cfg.MaxClockSkew, MaxEventAge: s.cfg.MaxEventAge, Now: s.now(),
	})
	if err != nil {
		s.writeRequestError(w, err)
		return nil, false
	}
	return items, true
}

// acceptInvalid answers 400 (listing up to maxListedErrors field errors, storing nothing) when some
// events are invalid and InvalidToErrors is off.
func (s *Server) acceptInvalid(w http.ResponseWriter, items []Item) bool {
	var invalid []FieldError
	nInvalid := 0
	for _, it := range items {
		if it.Event == nil {
			nInvalid++
			if len(invalid) < maxListedErrors {
				invalid = append(invalid, it.Errors...)
			}
		}
	}
	if nInvalid == 0 || s.cfg.InvalidToErrors {
		return true
	}
	s.m.events.WithLabelValues(outcomeRejected).Add(float64(len(items)))
	if len(invalid) > maxListedErrors {
		invalid = invalid[:maxListedErrors]
	}
	writeError(w, http.StatusBadRequest, fmt.Sprintf("%d of %d events are invalid; nothing was stored", nInvalid, len(items)), invalid)
	return false
}

// assignIDs gives the valid events without a click_id one of their own.
func (s *Server) assignIDs(w http.ResponseWriter, items []Item) bool {
	err := assignClickIDs(items, uuid.NewV7)
	if err == nil {
		return true
	}
	var re *RequestError
	if !errors.As(err, &re) {
		s.log.Error("cannot give events a click_id", zap.Error(err))
	}
	s.writeRequestError(w, err)
	return false
}

// answerStored stores the items and answers: 200 when all are stored, 202 when some went to the error
// stream, 503 (with Retry-After) when some are stored nowhere.
func (s *Server) answerStored(w http.ResponseWriter, c caller, items []Item) {
	resp := s.store(items)
	status := http.StatusOK
	switch {
	case resp.Failed > 0:
		status = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "1")
		s.log.Warn("events not stored", zap.String("key", c.name), zap.Int("failed", resp.Failed), zap.Int("events", len(items)))
	case resp.ErrorStream > 0:
		status = http.StatusAccepted
	}
	writeJSON(w, status, resp)
}

// store puts the valid items on the events stream and (with InvalidToErrors) the invalid ones on the
// error stream, and waits until every record is settled.
func (s *Server) store(items []Item) *Response {
	var wg sync.WaitGroup
	recs := make([]record, len(items))
	var evs, errs []*record
	for i := range items {
		it, r := &items[i], &recs[i]
		r.done = &wg
		if it.Event != nil {
			r.data, r.key = it.Data, it.Event.UserID
			evs = append(evs, r)
			continue
		}
		reason := (&messages.ValidationError{Errors: toMessageErrors(it.Errors)}).Error()
		data, err := json.Marshal(messages.NewErrorRecord("http:"+s.cfg.Stream, "", "", it.Data, errors.New(reason)))
		if err != nil { // cannot happen for these types; never lose the event silently
			r.failure = "cannot encode the error record"
			continue
		}
		sum := sha256.Sum256(it.Data)
		r.data, r.key = data, hex.EncodeToString(sum[:8])
		errs = append(errs, r)
	}
	wg.Add(len(evs) + len(errs))
	if len(evs) > 0 {
		s.events.submit(evs)
	}
	if len(errs) > 0 {
		s.errs.submit(errs)
	}
	wg.Wait()

	resp := &Response{Results: make([]eventResult, len(items))}
	for i := range recs {
		r, res := &recs[i], &resp.Results[i]
		res.Index = i
		switch {
		case r.failure != "":
			res.Status, res.Reason = StatusFailed, r.failure
			resp.Failed++
		case items[i].Event == nil:
			res.Status, res.Errors = StatusErrorStream, items[i].Errors
			res.ShardID, res.SequenceNumber = r.shardID, r.seq
			resp.ErrorStream++
		default:
			res.Status, res.ShardID, res.SequenceNumber = StatusStored, r.shardID, r.seq
			resp.Accepted++
		}
		if ev := items[i].Event; ev != nil {
			res.ClickID = ev.ClickID
		}
	}
	s.m.events.WithLabelValues(outcomeAccepted).Add(float64(resp.Accepted))
	s.m.events.WithLabelValues(outcomeErrorStrm).Add(float64(resp.ErrorStream))
	s.m.events.WithLabelValues(outcomeFailed).Add(float64(resp.Failed))
	return resp
}

func toMessageErrors(fes []FieldError) []messages.FieldError {
	out := make([]messages.FieldError, len(fes))
	for i, fe := range fes {
		out[i] = fe.FieldError
	}
	return out
}

// readBody reads the whole body, at most MaxRequestBytes (enforced while reading), growing its buffer
// only as bytes arrive (from 4 KiB) so a slow client holds little memory.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(min(r.ContentLength, 4<<10)))
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, s.cfg.MaxRequestBytes))
	if err == nil {
		return buf.Bytes(), nil
	}
	var mbe *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.As(err, &mbe):
		w.Header().Set("Connection", "close")
		return nil, &RequestError{Status: http.StatusRequestEntityTooLarge, Message: fmt.Sprintf("body is over the limit of %d bytes", s.cfg.MaxRequestBytes)}
	case errors.As(err, &ne) && ne.Timeout():
		w.Header().Set("Connection", "close")
		return nil, &RequestError{Status: http.StatusRequestTimeout, Message: fmt.Sprintf("body did not arrive within %s", s.cfg.ReadTimeout)}
	default:
		w.Header().Set("Connection", "close")
		return nil, &RequestError{Status: http.StatusBadRequest, Message: "reading the body: " + err.Error()}
	}
}

// errorBody is the body of every 4xx answer, and of 503 answers that store nothing.
type errorBody struct {
	Error  string       `json:"error"`
	Errors []FieldError `json:"errors,omitempty"`
}

func (s *Server) writeRequestError(w http.ResponseWriter, err error) {
	var re *RequestError
	if errors.As(err, &re) {
		writeError(w, re.Status, re.Message, re.Errors)
		return
	}
	writeError(w, http.StatusInternalServerError, "internal error", nil)
}

func writeError(w http.ResponseWriter, status int, msg string, errs []FieldError) {
	writeJSON(w, status, errorBody{Error: msg, Errors: errs})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		status, data = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(data, '\n'))
}
