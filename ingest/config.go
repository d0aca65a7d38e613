package ingest

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/clickfleet/clickfleet/internal/settings"
	"github.com/clickfleet/clickfleet/messages"
)

// ErrInvalidConfig is wrapped by every error [Config.Validate] returns.
var ErrInvalidConfig = errors.New("ingest: invalid configuration")

// Config holds the ingest's settings. Start from [DefaultConfig]; the zero value is not valid.
type Config struct {
	// Listen is the address Run listens on. Default: 127.0.0.1:8080.
	Listen string
	// Stream is the Kinesis stream events go to. Default: clickstream.
	Stream string
	// ErrorStream receives invalid events as messages.ErrorRecord when InvalidToErrors is set.
	// Default: clickstream-errors.
	ErrorStream string
	// InvalidToErrors accepts a request with invalid events: the valid ones go to Stream, the invalid ones
	// to ErrorStream, and the answer is 202. When false an invalid event fails the whole request with 400
	// and nothing is stored. Default: false.
	InvalidToErrors bool

	// Keys are the API keys accepted in the x-api-key header. At least one is needed unless
	// AllowAnonymous is set.
	Keys *Keys
	// AllowAnonymous serves requests without an API key (for local experiments only). Default: false.
	AllowAnonymous bool

	// MaxEventsPerRequest is the most events in one request (413 beyond). Default: 500.
	MaxEventsPerRequest int
	// MaxEventBytes is the largest event, in bytes of its JSON (413 beyond). At most 1 MiB, Kinesis'
	// record limit. Default: 1 MiB.
	MaxEventBytes int
	// MaxRequestBytes is the largest request body, enforced while reading (413 beyond). Default: 5 MiB.
	MaxRequestBytes int64
	// MaxClockSkew is how far in the future an event timestamp may be (400 beyond); 0 accepts any
	// timestamp the messages package accepts (years 2000–2100). Default: 5m.
	MaxClockSkew time.Duration
	// MaxEventAge rejects (400) event timestamps older than this; 0 accepts any age, as the seeds'
	// 2021 examples need. Default: 0.
	MaxEventAge time.Duration

	// RateLimit is each API key's sustained rate in events per second; 0 means no limit. A request is
	// admitted while the key's bucket holds a token and then takes one token per event, so a large request
	// may leave the bucket in debt. Default: 5000.
	RateLimit float64
	// RateBurst is the bucket's size in events. Default: 10000.
	RateBurst float64

	// Linger is how long the batcher waits for more events before a PutRecords call that is not full.
	// Default: 5ms.
	Linger time.Duration
	// MaxBatchRecords is the most records per PutRecords call (Kinesis allows 500). Default: 500.
	MaxBatchRecords int
	// MaxBatchBytes is the most data and partition-key bytes per PutRecords call (Kinesis allows 5 MiB).
	// Default: 5 MiB.
	MaxBatchBytes int
	// PutConcurrency is how many PutRecords calls may be in flight per stream. Default: 8.
	PutConcurrency int
	// PutAttempts is how many times a record is tried before it is reported failed. Default: 5.
	PutAttempts int
	// PutBackoff is the first pause before a retry; it doubles up to 1 s, jittered. Default: 50ms.
	PutBackoff time.Duration
	// PutTimeout bounds one PutRecords call. Default: 2s.
	PutTimeout time.Duration

	// ReadHeaderTimeout bounds reading a request's headers. Default: 5s.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included (408 beyond). Default: 30s.
	ReadTimeout time.Duration
	// WriteTimeout bounds the time from the end of the headers to the end of the answer; it must leave room
	// for the Put retries. Default: 60s.
	WriteTimeout time.Duration
	// IdleTimeout closes keep-alive connections idle this long. Default: 120s.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's headers. Default: 32 KiB.
	MaxHeaderBytes int
	// MaxConnections bounds open client connections; further ones wait to be accepted. 0 means no limit.
	// Default: 4096.
	MaxConnections int
	// ShutdownTimeout bounds the drain of in-flight requests when Run's context ends. Default: 30s.
	ShutdownTimeout time.Duration
	// ReadyCacheTTL is how long a /readyz probe of Kinesis is reused. Default: 1s.
	ReadyCacheTTL time.Duration

	// CORSOrigins are the browser origins allowed to call the API ("*" for any); empty disables CORS.
	// Default: none.
	CORSOrigins []string
}

// DefaultConfig returns the defaults documented on [Config], with no keys.
func DefaultConfig() Config {
	return Config{
		Listen:              "127.0.0.1:8080",
		Stream:              messages.Stream,
		ErrorStream:         messages.ErrorStream,
		MaxEventsPerRequest: 500,
		MaxEventBytes:       messages.MaxRecordBytes,
		MaxRequestBytes:     5 << 20,
		MaxClockSkew:        5 * time.Minute,
		RateLimit:           5000,
		RateBurst:           10000,
		Linger:              5 * time.Millisecond,
		MaxBatchRecords:     500,
		MaxBatchBytes:       5 << 20,
		PutConcurrency:      8,
		PutAttempts:         5,
		PutBackoff:          50 * time.Millisecond,
		PutTimeout:          2 * time.Second,
		ReadHeaderTimeout:   5 * time.Second,
		ReadTimeout:         30 * time.Second,
		WriteTimeout:        60 * time.Second,
		IdleTimeout:         120 * time.Second,
		MaxHeaderBytes:      32 << 10,
		MaxConnections:      4096,
		ShutdownTimeout:     30 * time.Second,
		ReadyCacheTTL:       time.Second,
	}
}

// Validate reports the first setting out of range: an error wrapping ErrInvalidConfig and a
// *settings.Error naming the field.
func (c Config) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, settings.Invalid(field, format, args...))
	}
	switch {
	case c.Stream == "":
		return bad("Stream", "empty")
	case c.InvalidToErrors && c.ErrorStream == "":
		return bad("ErrorStream", "empty, but InvalidToErrors is set")
	case !c.AllowAnonymous && c.Keys.Len() == 0:
		return bad("Keys", "no API keys; give some (or set AllowAnonymous for local experiments)")
	case c.MaxEventsPerRequest < 1:
		return bad("MaxEventsPerRequest", "must be at least 1, got %d", c.MaxEventsPerRequest)
	case c.MaxEventBytes < 64 || c.MaxEventBytes > messages.MaxRecordBytes:
		return bad("MaxEventBytes", "must be 64..%d (Kinesis' record limit), got %d", messages.MaxRecordBytes, c.MaxEventBytes)
	case c.MaxRequestBytes < int64(c.MaxEventBytes):
		return bad("MaxRequestBytes", "%d must be at least MaxEventBytes (%d)", c.MaxRequestBytes, c.MaxEventBytes)
	case c.MaxClockSkew < 0:
		return bad("MaxClockSkew", "must not be negative, got %s", c.MaxClockSkew)
	case c.MaxEventAge < 0:
		return bad("MaxEventAge", "must not be negative, got %s", c.MaxEventAge)
	case c.RateLimit < 0:
		return bad("RateLimit", "must not be negative, got %g", c.RateLimit)
	case c.RateLimit > 0 && c.RateBurst < 1:
		return bad("RateBurst", "must be at least 1 when RateLimit is set, got %g", c.RateBurst)
	case c.Linger < 0:
		return bad("Linger", "must not be negative, got %s", c.Linger)
	case c.MaxBatchRecords < 1 || c.MaxBatchRecords > 500:
		return bad("MaxBatchRecords", "must be 1..500, got %d", c.MaxBatchRecords)
	case c.MaxBatchBytes < c.MaxEventBytes+256 || c.MaxBatchBytes > 5<<20:
		return bad("MaxBatchBytes", "must hold one largest event (MaxEventBytes + 256) and be at most 5 MiB, got %d", c.MaxBatchBytes)
	case c.PutConcurrency < 1:
		return bad("PutConcurrency", "must be at least 1, got %d", c.PutConcurrency)
	case c.PutAttempts < 1:
		return bad("PutAttempts", "must be at least 1, got %d", c.PutAttempts)
	case c.PutBackoff <= 0:
		return bad("PutBackoff", "must be positive, got %s", c.PutBackoff)
	case c.PutTimeout <= 0:
		return bad("PutTimeout", "must be positive, got %s", c.PutTimeout)
	case c.ReadHeaderTimeout <= 0:
		return bad("ReadHeaderTimeout", "must be positive, got %s", c.ReadHeaderTimeout)
	case c.ReadTimeout <= 0:
		return bad("ReadTimeout", "must be positive, got %s", c.ReadTimeout)
	case c.WriteTimeout <= 0:
		return bad("WriteTimeout", "must be positive, got %s", c.WriteTimeout)
	case c.IdleTimeout <= 0:
		return bad("IdleTimeout", "must be positive, got %s", c.IdleTimeout)
	case c.WriteTimeout < time.Duration(c.PutAttempts)*c.PutTimeout:
		return bad("WriteTimeout", "%s must be at least PutAttempts × PutTimeout (%s), or answers would be cut off",
			c.WriteTimeout, time.Duration(c.PutAttempts)*c.PutTimeout)
	case c.MaxHeaderBytes < 1024:
		return bad("MaxHeaderBytes", "must be at least 1024, got %d", c.MaxHeaderBytes)
	case c.MaxConnections < 0:
		return bad("MaxConnections", "must not be negative, got %d", c.MaxConnections)
	case c.ShutdownTimeout <= 0:
		return bad("ShutdownTimeout", "must be positive, got %s", c.ShutdownTimeout)
	case c.ReadyCacheTTL < 0:
		return bad("ReadyCacheTTL", "must not be negative, got %s", c.ReadyCacheTTL)
	}
	for _, o := range c.CORSOrigins {
		if o == "*" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") ||
			strings.HasSuffix(o, "/") {
			return bad("CORSOrigins", "%q is not an origin like https://app.example.com (or *)", o)
		}
	}
	return nil
}
