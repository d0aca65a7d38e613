package geo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// IPInfoConfig configures an IPInfo provider. Zero fields take the defaults named in their docs.
type IPInfoConfig struct {
	// BaseURL is where `GET <BaseURL>/<ip>/json` is served. Default: "https://ipinfo.io".
	BaseURL string
	// Token is sent as a bearer token (ipinfo's access token); empty: none (ipinfo's free, rate-limited tier).
	Token string
	// Timeout bounds each HTTP request. Default: 2s.
	Timeout time.Duration
	// MaxConcurrent bounds the requests in flight; a lookup waits for a slot only as long as its context
	// allows, then fails with ErrBusy. Default: 8.
	MaxConcurrent int
	// FailureThreshold consecutive failures (transport error, timeout, 5xx, 429, 401/403) open the circuit:
	// lookups then fail at once with ErrCircuitOpen, without a request. Default: 5.
	FailureThreshold int
	// OpenFor is how long the circuit stays open before one trial request is let through (half-open); its
	// success closes the circuit, its failure opens it again. Default: 10s.
	OpenFor time.Duration
	// Client sends the requests. Default: a client with no timeout of its own (Timeout applies).
	Client *http.Client
	// Now is the breaker's clock. Default: time.Now.
	Now func() time.Time
	// Logger receives circuit state changes. Default: zap.NewNop().
	Logger *zap.Logger
	// Registerer receives the metrics (clickfleet_geo_ipinfo_*). Default: none.
	Registerer prometheus.Registerer
}

// IPInfo is a Provider speaking ipinfo.io's JSON API: `GET /<ip>/json` → {"country":"US",
// "region":"California","city":"Riverside",…}. An answer with "bogon":true, without a country, or a 404
// is StatusNotFound. Safe for concurrent use.
type IPInfo struct {
	cfg  IPInfoConfig
	base string
	sem  chan struct{}
	log  *zap.Logger

	mu       sync.Mutex
	failures int       // consecutive
	openedAt time.Time // zero: closed
	probing  bool      // a half-open trial is in flight

	requests *prometheus.CounterVec
	open     prometheus.Gauge
}

// NewIPInfo checks cfg and returns the provider. It does no I/O.
func NewIPInfo(cfg IPInfoConfig) (*IPInfo, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = "https://ipinfo.io"
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: ipinfo URL must be an http:// or https:// URL, not %q", ErrInvalidConfig, cfg.BaseURL)
	}
	if cfg.Timeout < 0 || cfg.MaxConcurrent < 0 || cfg.FailureThreshold < 0 || cfg.OpenFor < 0 {
		return nil, fmt.Errorf("%w: ipinfo timeout, concurrency, failure threshold and open time must not be negative", ErrInvalidConfig)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.MaxConcurrent == 0 {
		cfg.MaxConcurrent = 8
	}
	if cfg.FailureThreshold == 0 {
		cfg.FailureThreshold = 5
	}
	if cfg.OpenFor == 0 {
		cfg.OpenFor = 10 * time.Second
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	p := &IPInfo{
		cfg: cfg, base: strings.TrimRight(cfg.BaseURL, "/"), sem: make(chan struct{}, cfg.MaxConcurrent),
		log: cfg.Logger.Named("ipinfo"),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "clickfleet", Subsystem: "geo", Name: "ipinfo_requests_total",
			Help: "ipinfo lookups by outcome: ok, not_found, failed, circuit_open, busy."}, []string{"outcome"}),
		open: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "clickfleet", Subsystem: "geo", Name: "ipinfo_circuit_open",
			Help: "1 while the ipinfo circuit breaker is open (lookups fail fast), else 0."}),
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{p.requests, p.open} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("register ipinfo metrics: %w", err)
			}
		}
	}
	return p, nil
}

// ipinfoAnswer is the part of ipinfo's JSON that matters here.
type ipinfoAnswer struct {
	Country string `json:"country"`
	Region  string `json:"region"`
	City    string `json:"city"`
	Loc     string `json:"loc"` // "latitude,longitude"
	Bogon   bool   `json:"bogon"`
}

// Lookup asks the service about ip. Errors wrap ErrCircuitOpen (no request made), ErrBusy (no slot within
// ctx) or ErrProvider (the request failed); a cancelled ctx is not counted against the service.
func (p *IPInfo) Lookup(ctx context.Context, ip netip.Addr) (Location, error) {
	if err := p.openErr(); err != nil { // fail fast: do not even wait for a slot
		p.requests.WithLabelValues("circuit_open").Inc()
		return Location{}, err
	}
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		p.requests.WithLabelValues("busy").Inc()
		return Location{}, fmt.Errorf("%w: waiting for one of %d ipinfo slots: %w", ErrBusy, p.cfg.MaxConcurrent, ctx.Err())
	}
	defer func() { <-p.sem }()
	// Decide again with the slot in hand: the circuit may have opened while this lookup waited.
	probe, err := p.admit()
	if err != nil {
		p.requests.WithLabelValues("circuit_open").Inc()
		return Location{}, err
	}
	loc, err := p.get(ctx, ip)
	switch {
	case err == nil:
		p.release(probe, outcomeSuccess)
		if loc.Status == StatusFound {
			p.requests.WithLabelValues("ok").Inc()
		} else {
			p.requests.WithLabelValues("not_found").Inc()
		}
	case ctx.Err() != nil:
		p.release(probe, outcomeNeutral) // the caller gave up; says nothing about the service
		p.requests.WithLabelValues("failed").Inc()
	default:
		p.release(probe, outcomeFailure)
		p.requests.WithLabelValues("failed").Inc()
	}
	return loc, err
}

func (p *IPInfo) get(ctx context.Context, ip netip.Addr) (Location, error) {
	rctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, p.base+"/"+ip.String()+"/json", nil)
	if err != nil {
		return Location{}, fmt.Errorf("%w: ipinfo request for %s: %w", ErrProvider, ip, err)
	}
	req.Header.Set("Accept", "application/json")
	if p.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+p.cfg.Token)
	}
	resp, err := p.cfg.Client.Do(req)
	if err != nil {
		return Location{}, fmt.Errorf("%w: ipinfo %s: %w", ErrProvider, ip, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return Location{}, fmt.Errorf("%w: ipinfo %s: read answer: %w", ErrProvider, ip, err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return Location{Status: StatusNotFound}, nil
	case resp.StatusCode != http.StatusOK:
		return Location{}, fmt.Errorf("%w: ipinfo %s: HTTP %d: %.200s", ErrProvider, ip, resp.StatusCode, body)
	}
	var a ipinfoAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return Location{}, fmt.Errorf("%w: ipinfo %s: bad JSON: %w", ErrProvider, ip, err)
	}
	if a.Bogon || a.Country == "" {
		return Location{Status: StatusNotFound}, nil
	}
	loc := Location{Country: a.Country, Region: a.Region, City: a.City, Status: StatusFound}
	if lat, lon, ok := strings.Cut(a.Loc, ","); ok {
		la, err1 := strconv.ParseFloat(strings.TrimSpace(lat), 64)
		lo, err2 := strconv.ParseFloat(strings.TrimSpace(lon), 64)
		if err1 == nil && err2 == nil {
			loc = loc.withCoordinates(la, lo)
		}
	}
	return loc, nil
}

type outcome int

const (
	outcomeNeutral outcome = iota
	outcomeSuccess
	outcomeFailure
)

// openErr returns ErrCircuitOpen while the circuit is open and not yet due for a trial, without reserving
// the trial.
func (p *IPInfo) openErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.openedAt.IsZero() && (p.probing || p.cfg.Now().Sub(p.openedAt) < p.cfg.OpenFor) {
		return fmt.Errorf("%w: %d consecutive ipinfo failures", ErrCircuitOpen, p.failures)
	}
	return nil
}

// admit decides whether a request may go out now. probe is true for the one trial of a half-open circuit.
func (p *IPInfo) admit() (probe bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.openedAt.IsZero() {
		return false, nil
	}
	if p.probing || p.cfg.Now().Sub(p.openedAt) < p.cfg.OpenFor {
		return false, fmt.Errorf("%w: %d consecutive ipinfo failures", ErrCircuitOpen, p.failures)
	}
	p.probing = true
	return true, nil
}

func (p *IPInfo) release(probe bool, o outcome) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if probe {
		p.probing = false
	}
	switch o {
	case outcomeSuccess:
		if !p.openedAt.IsZero() {
			p.log.Info("ipinfo circuit closed: the service answers again")
		}
		p.failures, p.openedAt = 0, time.Time{}
		p.open.Set(0)
	case outcomeFailure:
		p.failures++
		if probe || (p.openedAt.IsZero() && p.failures >= p.cfg.FailureThreshold) {
			if p.openedAt.IsZero() {
				p.log.Warn("ipinfo circuit opened: lookups fail fast", zap.Int("failures", p.failures), zap.Duration("open_for", p.cfg.OpenFor))
			}
			p.openedAt = p.cfg.Now()
			p.open.Set(1)
		}
	}
}

// CircuitOpen reports whether lookups currently fail fast.
func (p *IPInfo) CircuitOpen() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.openedAt.IsZero()
}

// IsUnavailable reports whether err means "no answer now, ask again later" (as opposed to a bad setting).
func IsUnavailable(err error) bool {
	return errors.Is(err, ErrProvider) || errors.Is(err, ErrCircuitOpen) || errors.Is(err, ErrBusy) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}
