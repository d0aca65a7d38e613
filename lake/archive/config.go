package archive

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/internal/retry"
)

// ErrInvalidConfig is wrapped by every error Config.Validate returns.
var ErrInvalidConfig = errors.New("archive: invalid configuration")

// Buffering limits and defaults (the seed's Firehose: 3 MB or 60 s; Firehose accepts 60–900 s).
const (
	DefaultBufferBytes    = 3 << 20
	DefaultBufferInterval = 60 * time.Second
	MinBufferInterval     = 60 * time.Second
	MaxBufferInterval     = 900 * time.Second
)

// DefaultPutTimeout is Config.PutTimeout's default.
const DefaultPutTimeout = 30 * time.Second

// DefaultShutdownTimeout is the lease shutdown timeout the archive's command gives its worker, longer than
// the lease package's (5s): on a clean stop each held shard stores its buffer — up to BufferBytes of raw
// input as three objects — before it checkpoints and releases its lease.
const DefaultShutdownTimeout = 20 * time.Second

// Compression is the raw and errors objects' compression.
type Compression string

// The compressions.
const (
	Gzip Compression = "gzip" // .ndjson.gz
	None Compression = "none" // .ndjson
)

// Location is where one kind of object goes: a bucket and a key prefix ("" or ending in "/").
type Location struct {
	Bucket string
	Prefix string
}

// String returns the location as an s3:// URL.
func (l Location) String() string { return "s3://" + l.Bucket + "/" + l.Prefix }

// ParseURL parses s3://bucket[/prefix]; the prefix gets a trailing "/" when it lacks one.
func ParseURL(s string) (Location, error) {
	u, err := url.Parse(s)
	if err != nil {
		return Location{}, err
	}
	if u.Scheme != "s3" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return Location{}, fmt.Errorf("%q is not an s3://bucket/prefix URL", s)
	}
	p := strings.TrimPrefix(u.Path, "/")
	if p != "" && !strings.HasSuffix(p, "/") {
		p += "/"
	}
	return Location{Bucket: u.Host, Prefix: p}, nil
}

// Config configures an Archiver. Zero values take the documented defaults; Validate fills them in.
type Config struct {
	// Stream is the stream's name, the first part of every object name. Required.
	Stream string
	// Raw, Events and Errors are where the three kinds of objects go. Required (Bucket).
	Raw, Events, Errors Location
	// BufferBytes rolls an object when its records' raw bytes would exceed it. Default: 3 MiB.
	BufferBytes int
	// BufferInterval rolls an object this long after its first record was buffered (processing time).
	// 60s–900s as Firehose allows, unless UncheckedInterval. Default: 60s.
	BufferInterval time.Duration
	// UncheckedInterval allows any positive BufferInterval, for local runs and demos. Default: false.
	UncheckedInterval bool
	// RawCompression is the raw and errors objects' compression. Default: Gzip.
	RawCompression Compression
	// UnconditionalPuts stores objects without If-None-Match, for S3 servers that do not support
	// conditional writes; a HEAD before each raw PUT still finds an object a previous holder stored, but a
	// deposed owner racing a new one is then stopped by the lease check alone. Default: false.
	UnconditionalPuts bool
	// PutTimeout bounds one PUT or HEAD (and is cut to the lease's remaining validity). Default: 30s.
	PutTimeout time.Duration
	// Backoff paces retries of failed S3 calls and checkpoints. Default: 200ms doubling to 10s.
	Backoff retry.Backoff
	// Geo locates user_ip; nil: no location (geo_status null). *geo.Resolver implements it.
	Geo Locator
	// Names reads users' names from the Redis user hashes <Prefix>user:<id> (field name); nil: no names.
	Names RedisClient
	// Prefix is the Redis key prefix. Default: "cf:".
	Prefix string
	// NamesTimeout bounds the names lookup of one object. Default: 2s.
	NamesTimeout time.Duration
	// CheckInterval is how often buffers are checked against BufferInterval. Default: 1s.
	CheckInterval time.Duration
	// Now is the processing-time clock of BufferInterval. Default: time.Now.
	Now func() time.Time
	// Logger receives structured logs. Default: zap.NewNop().
	Logger *zap.Logger
	// Registerer receives the archive's metrics. Default: nil (none).
	Registerer prometheus.Registerer
}

// Validate fills in defaults and names the first bad setting.
func (c *Config) Validate() error {
	bad := func(setting, format string, args ...any) error {
		return fmt.Errorf("%w: %s %s", ErrInvalidConfig, setting, fmt.Sprintf(format, args...))
	}
	if c.Stream == "" {
		return bad("Stream", "is required")
	}
	for name, l := range map[string]Location{"Raw": c.Raw, "Events": c.Events, "Errors": c.Errors} {
		if l.Bucket == "" {
			return bad(name, "needs a bucket")
		}
	}
	if c.BufferBytes == 0 {
		c.BufferBytes = DefaultBufferBytes
	}
	if c.BufferBytes < 1 || c.BufferBytes > 128<<20 {
		return bad("BufferBytes", "must be 1 B..128 MiB, got %d", c.BufferBytes)
	}
	if c.BufferInterval == 0 {
		c.BufferInterval = DefaultBufferInterval
	}
	switch {
	case c.BufferInterval < 0:
		return bad("BufferInterval", "must be positive, got %s", c.BufferInterval)
	case !c.UncheckedInterval && (c.BufferInterval < MinBufferInterval || c.BufferInterval > MaxBufferInterval):
		return bad("BufferInterval", "must be %s..%s (as Firehose), got %s; allow other values with UncheckedInterval", MinBufferInterval, MaxBufferInterval, c.BufferInterval)
	}
	switch c.RawCompression {
	case "":
		c.RawCompression = Gzip
	case Gzip, None:
	default:
		return bad("RawCompression", "must be gzip or none, not %q", c.RawCompression)
	}
	if c.Prefix == "" {
		c.Prefix = "cf:"
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"PutTimeout", &c.PutTimeout, DefaultPutTimeout},
		{"NamesTimeout", &c.NamesTimeout, 2 * time.Second},
		{"CheckInterval", &c.CheckInterval, time.Second},
	} {
		if *d.v == 0 {
			*d.v = d.def
		}
		if *d.v < 0 {
			return bad(d.name, "must not be negative, got %s", *d.v)
		}
	}
	if c.Backoff.Initial == 0 {
		c.Backoff.Initial = 200 * time.Millisecond
	}
	if c.Backoff.Max == 0 {
		c.Backoff.Max = 10 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return nil
}

func (c *Config) rawExt() string {
	if c.RawCompression == None {
		return ".ndjson"
	}
	return ".ndjson.gz"
}
