package geo

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/actors/session"
)

// RedisClient is the part of go-redis the Resolver uses; *redis.Client and *redis.ClusterClient have it.
type RedisClient interface {
	HGetAll(ctx context.Context, key string) *redis.MapStringStringCmd
	TxPipelined(ctx context.Context, fn func(redis.Pipeliner) error) ([]redis.Cmder, error)
	Pipelined(ctx context.Context, fn func(redis.Pipeliner) error) ([]redis.Cmder, error)
}

// Defaults of Config's fields.
const (
	DefaultTTL           = 7 * 24 * time.Hour
	DefaultNotFoundTTL   = time.Hour
	DefaultCacheSize     = 100000
	DefaultRedisTimeout  = 250 * time.Millisecond
	DefaultLookupTimeout = 5 * time.Second
	DefaultMaxPending    = 10000
)

// Config configures a Resolver. Zero fields take the defaults named in their docs.
type Config struct {
	// Provider answers what neither cache knows. Required.
	Provider Provider
	// Redis is the shared cache; nil: only the in-process cache.
	Redis RedisClient
	// Prefix starts every Redis key; the geo cache is <Prefix>geo:<ip>. Default: "cf:".
	Prefix string
	// TTL is how long an answer (found) stays cached, in Redis and in process. Default: 7 days.
	TTL time.Duration
	// NotFoundTTL is how long a "not found" answer stays cached. Default: 1 hour.
	NotFoundTTL time.Duration
	// CacheSize bounds the in-process LRU, in addresses (about 150 bytes each). Default: 100000.
	CacheSize int
	// RedisTimeout bounds each Redis read and write, so a slow or absent Redis costs a lookup at most this
	// much before the provider is asked. Default: 250ms.
	RedisTimeout time.Duration
	// LookupTimeout bounds a Resolve from its start to its answer (caches and provider together).
	// Default: 5s.
	LookupTimeout time.Duration
	// MaxPending bounds the distinct addresses Resolve looks up at once; beyond it Resolve answers
	// StatusUnavailable at once. Default: 10000.
	MaxPending int
	// Now is the clock for cache expiry. Default: time.Now.
	Now func() time.Time
	// Logger receives lookup failures (debug) and cache outages (warn). Default: zap.NewNop().
	Logger *zap.Logger
	// Registerer receives the metrics (clickfleet_geo_*). Default: none.
	Registerer prometheus.Registerer
}

// ErrInvalidConfig is wrapped by the errors of Config.Validate and NewResolver.
var ErrInvalidConfig = errors.New("geo: invalid configuration")

// Validate fills in defaults and reports the first bad setting, naming it.
func (c *Config) Validate() error {
	if c.Provider == nil {
		return fmt.Errorf("%w: no provider (set an MMDB file or an ipinfo URL)", ErrInvalidConfig)
	}
	if c.Prefix == "" {
		c.Prefix = session.DefaultPrefix
	}
	defaults := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"TTL", &c.TTL, DefaultTTL},
		{"NotFoundTTL", &c.NotFoundTTL, DefaultNotFoundTTL},
		{"RedisTimeout", &c.RedisTimeout, DefaultRedisTimeout},
		{"LookupTimeout", &c.LookupTimeout, DefaultLookupTimeout},
	}
	for _, d := range defaults {
		if *d.v < 0 {
			return fmt.Errorf("%w: %s must not be negative, got %s", ErrInvalidConfig, d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.TTL < time.Second || c.NotFoundTTL < time.Second {
		return fmt.Errorf("%w: TTL and NotFoundTTL must be at least 1s (Redis expiry granularity)", ErrInvalidConfig)
	}
	if c.CacheSize < 0 || c.MaxPending < 0 {
		return fmt.Errorf("%w: CacheSize and MaxPending must not be negative", ErrInvalidConfig)
	}
	if c.CacheSize == 0 {
		c.CacheSize = DefaultCacheSize
	}
	if c.MaxPending == 0 {
		c.MaxPending = DefaultMaxPending
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return nil
}

// Resolver resolves addresses through the in-process cache, Redis and a Provider. It is safe for
// concurrent use. Create it with NewResolver; Close it to stop and wait for its background lookups.
type Resolver struct {
	cfg   Config
	log   *zap.Logger
	cache *lru
	m     *metrics

	base     context.Context
	stopBase context.CancelFunc

	mu      sync.Mutex
	closed  bool
	pending map[string]*call
	wg      sync.WaitGroup
}

type call struct{ fns []func(Location) }

// NewResolver checks cfg and returns a Resolver. It does no I/O and starts no goroutine.
func NewResolver(cfg Config) (*Resolver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	base, stop := context.WithCancel(context.Background())
	return &Resolver{
		cfg: cfg, log: cfg.Logger.Named("geo"), cache: newLRU(cfg.CacheSize), m: m,
		base: base, stopBase: stop, pending: make(map[string]*call),
	}, nil
}

// Cached answers from the in-process cache only, without blocking on anything but a short mutex: it never
// does I/O. For a malformed, private or reserved address it answers StatusUnknown (ok is true). ok is false
// when the address must be looked up (use Resolve or Lookup).
func (r *Resolver) Cached(ip string) (loc Location, ok bool) {
	a, public := ParsePublic(ip)
	if !public {
		r.m.unknown.Inc()
		return Location{Status: StatusUnknown}, true
	}
	var buf [48]byte // an IPv6 address's text is at most 45 bytes (no zone: ParsePublic refuses them)
	if loc, ok := r.cache.getBytes(a.AppendTo(buf[:0]), r.cfg.Now()); ok {
		r.m.memory.Inc()
		return loc, true
	}
	return Location{}, false
}

// Resolve looks ip up in the background and returns at once. fn is called exactly once with the answer,
// on a goroutine of the Resolver (never the caller's), after at most about LookupTimeout. Concurrent
// Resolves of the same address share one lookup. When MaxPending addresses are already being looked up,
// fn gets StatusUnavailable at once (still on another goroutine). After Close, fn is called with
// StatusUnavailable on the caller's goroutine. fn must not block for long: it delays the answers of every
// other caller waiting for the same address.
func (r *Resolver) Resolve(ip string, fn func(Location)) {
	key, quick, ok := r.quick(ip)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		fn(Location{Status: StatusUnavailable})
		return
	}
	if ok {
		r.wg.Add(1)
		r.mu.Unlock()
		go func() {
			defer r.wg.Done()
			fn(quick)
		}()
		return
	}
	if c, ok := r.pending[key]; ok {
		c.fns = append(c.fns, fn)
		r.mu.Unlock()
		return
	}
	if len(r.pending) >= r.cfg.MaxPending {
		r.wg.Add(1)
		r.mu.Unlock()
		r.m.overflow.Inc()
		go func() {
			defer r.wg.Done()
			fn(Location{Status: StatusUnavailable})
		}()
		return
	}
	c := &call{fns: []func(Location){fn}}
	r.pending[key] = c
	r.m.pending.Set(float64(len(r.pending)))
	r.wg.Add(1)
	r.mu.Unlock()
	go func() {
		defer r.wg.Done()
		ctx, cancel := context.WithTimeout(r.base, r.cfg.LookupTimeout)
		loc, err := r.lookupPublic(ctx, key)
		cancel()
		if err != nil {
			r.log.Debug("geo lookup failed", zap.String("ip", key), zap.Error(err))
		}
		r.mu.Lock()
		delete(r.pending, key)
		r.m.pending.Set(float64(len(r.pending)))
		r.mu.Unlock()
		for _, fn := range c.fns {
			fn(loc)
		}
	}()
}

// quick parses ip and answers what needs no I/O: unknown addresses and in-process cache hits.
func (r *Resolver) quick(ip string) (key string, loc Location, ok bool) {
	a, public := ParsePublic(ip)
	if !public {
		r.m.unknown.Inc()
		return "", Location{Status: StatusUnknown}, true
	}
	key = a.String()
	if loc, ok := r.cache.get(key, r.cfg.Now()); ok {
		r.m.memory.Inc()
		return key, loc, true
	}
	return key, Location{}, false
}

// Lookup resolves ip and blocks until it has an answer or ctx ends: meant for code that may wait (a
// goroutine of its own, a batch job), never for an actor's Receive. The error is nil unless the Location
// is StatusUnavailable; then it wraps the provider's failure (ErrProvider, ErrCircuitOpen, ErrBusy) or
// ctx's error. A Redis outage is not an error: the provider is asked instead.
func (r *Resolver) Lookup(ctx context.Context, ip string) (Location, error) {
	key, loc, ok := r.quick(ip)
	if ok {
		return loc, nil
	}
	return r.lookupPublic(ctx, key)
}

// lookupPublic resolves a normalized public address through Redis and the provider, filling the caches.
func (r *Resolver) lookupPublic(ctx context.Context, key string) (Location, error) {
	// Another caller may have filled the cache since quick looked.
	if loc, ok := r.cache.get(key, r.cfg.Now()); ok {
		r.m.memory.Inc()
		return loc, nil
	}
	rkey := r.cfg.Prefix + "geo:" + key
	if r.cfg.Redis != nil {
		if loc, ttl, ok := r.readRedis(ctx, rkey); ok {
			r.m.redis.Inc()
			r.cache.put(key, loc, r.cfg.Now().Add(ttl))
			return loc, nil
		}
	}
	a, _ := ParsePublic(key)
	start := time.Now()
	loc, err := r.cfg.Provider.Lookup(ctx, a)
	r.m.providerSeconds.Observe(time.Since(start).Seconds())
	if err == nil && loc.Status != StatusFound && loc.Status != StatusNotFound {
		err = fmt.Errorf("%w: provider answered status %s for %s", ErrProvider, loc.Status, key)
	}
	if err != nil {
		r.m.unavailable.Inc()
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
		return Location{Status: StatusUnavailable}, fmt.Errorf("geo lookup %s: %w", key, err)
	}
	r.m.provider.Inc()
	ttl := r.cfg.TTL
	if loc.Status == StatusNotFound {
		loc = Location{Status: StatusNotFound}
		ttl = r.cfg.NotFoundTTL
	}
	r.cache.put(key, loc, r.cfg.Now().Add(ttl))
	if r.cfg.Redis != nil {
		r.writeRedis(ctx, rkey, loc, ttl)
	}
	return loc, nil
}

// Redis hash fields of a cached answer.
const (
	fieldCountry  = "country"
	fieldRegion   = "region"
	fieldCity     = "city"
	fieldNotFound = "not_found"
	fieldLat      = "lat"
	fieldLon      = "lon"
)

// readRedis returns the cached answer under rkey. A miss and an outage both return ok=false; an outage is
// counted and logged, never an error, so enrichment goes on without the shared cache. The in-process copy
// of a Redis answer lives as long as a fresh answer would (the entry's remaining TTL is not read, to keep
// this one round trip).
func (r *Resolver) readRedis(ctx context.Context, rkey string) (Location, time.Duration, bool) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.RedisTimeout)
	defer cancel()
	h, err := r.cfg.Redis.HGetAll(ctx, rkey).Result()
	if err != nil {
		r.m.redisErrors.WithLabelValues("read").Inc()
		r.log.Warn("geo cache read failed", zap.String("key", rkey), zap.Error(err))
		return Location{}, 0, false
	}
	return r.fromRedis(h)
}

// fromRedis interprets a cached answer's hash (empty: a miss).
func (r *Resolver) fromRedis(h map[string]string) (Location, time.Duration, bool) {
	if len(h) == 0 {
		return Location{}, 0, false
	}
	if h[fieldNotFound] != "" {
		return Location{Status: StatusNotFound}, r.cfg.NotFoundTTL, true
	}
	if h[fieldCountry] == "" {
		return Location{}, 0, false // not written by us: look it up again
	}
	loc := Location{Country: h[fieldCountry], Region: h[fieldRegion], City: h[fieldCity], Status: StatusFound}
	if h[fieldLat] != "" {
		lat, err1 := strconv.ParseFloat(h[fieldLat], 64)
		lon, err2 := strconv.ParseFloat(h[fieldLon], 64)
		if err1 == nil && err2 == nil {
			loc = loc.withCoordinates(lat, lon)
		}
	}
	return loc, r.cfg.TTL, true
}

// appendRedisFields appends a found answer's hash fields.
func appendRedisFields(dst []any, loc Location) []any {
	dst = append(dst, fieldCountry, loc.Country, fieldRegion, loc.Region, fieldCity, loc.City)
	if loc.HasCoordinates {
		dst = append(dst, fieldLat, strconv.FormatFloat(loc.Latitude, 'f', -1, 64), fieldLon, strconv.FormatFloat(loc.Longitude, 'f', -1, 64))
	}
	return dst
}

func (r *Resolver) writeRedis(ctx context.Context, rkey string, loc Location, ttl time.Duration) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.RedisTimeout)
	defer cancel()
	_, err := r.cfg.Redis.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, rkey)
		if loc.Status == StatusNotFound {
			p.HSet(ctx, rkey, fieldNotFound, "1")
		} else {
			p.HSet(ctx, rkey, appendRedisFields(nil, loc)...)
		}
		p.Expire(ctx, rkey, ttl)
		return nil
	})
	if err != nil {
		r.m.redisErrors.WithLabelValues("write").Inc()
		r.log.Warn("geo cache write failed", zap.String("key", rkey), zap.Error(err))
	}
}

// Close stops accepting Resolves, cancels the lookups in flight (their callers get StatusUnavailable) and
// waits until every callback has returned. Idempotent; safe to call concurrently with Resolve.
func (r *Resolver) Close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.stopBase()
	r.wg.Wait()
	return nil
}

type metrics struct {
	lookups                                                 *prometheus.CounterVec
	memory, redis, provider, unknown, unavailable, overflow prometheus.Counter
	redisErrors                                             *prometheus.CounterVec
	pending                                                 prometheus.Gauge
	providerSeconds                                         prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "clickfleet", Subsystem: "geo", Name: "lookups_total",
			Help: "Geo lookups by where the answer came from: memory, redis, provider, unknown (not a public address), unavailable, overflow."},
			[]string{"source"}),
		redisErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "clickfleet", Subsystem: "geo", Name: "redis_errors_total",
			Help: "Failed reads and writes of the Redis geo cache (the lookup goes on without it)."}, []string{"op"}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "clickfleet", Subsystem: "geo", Name: "pending",
			Help: "Distinct addresses Resolve is looking up now."}),
		providerSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "clickfleet", Subsystem: "geo", Name: "provider_seconds",
			Help: "Time the provider took per lookup.", Buckets: prometheus.ExponentialBuckets(0.00001, 4, 10)}),
	}
	m.memory, m.redis, m.provider = m.lookups.WithLabelValues("memory"), m.lookups.WithLabelValues("redis"), m.lookups.WithLabelValues("provider")
	m.unknown, m.unavailable, m.overflow = m.lookups.WithLabelValues("unknown"), m.lookups.WithLabelValues("unavailable"), m.lookups.WithLabelValues("overflow")
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.lookups, m.redisErrors, m.pending, m.providerSeconds} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register geo metrics: %w", err)
		}
	}
	return m, nil
}
