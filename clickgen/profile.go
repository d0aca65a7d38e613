package clickgen

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"time"
)

// Profile names an event shape and pacing.
type Profile string

// The profiles of the two seed documents.
const (
	ProfilePOC Profile = "poc" // aws-clickstream-poc: numeric users, IPs, additional_data
	ProfileLab Profile = "lab" // kinesis-sessionization-lab: user1..userN, 2 s clicks, 15 s pauses
)

// Event is one generated click: the JSON written to the stream, its partition key and its offset on the
// simulated clock from the generator's start.
type Event struct {
	UserID string
	Data   []byte
	At     time.Duration // offset of the event's timestamp from Config.Start
}

var (
	pocEvents = []string{"Search", "AddToCart", "ViewContent", "Purchase"}
	labEvents = []string{"checkout", "search", "category", "detail", "navigate"}
)

// source produces the events of one profile in order. It is not safe for concurrent use.
type source struct {
	cfg   Config
	rng   *rand.Rand
	n     int64
	clock time.Duration
	ips   []string // poc: one per user
}

func newSource(cfg Config) *source {
	s := &source{cfg: cfg, rng: rand.New(rand.NewPCG(uint64(cfg.Seed), 0x636c69636b666c74))}
	if cfg.Profile == ProfilePOC {
		s.ips = make([]string, cfg.Users)
		for i := range s.ips {
			s.ips[i] = s.publicIPv4()
		}
	}
	return s
}

// next returns the next event; its At is the simulated time of its timestamp.
func (s *source) next() (Event, error) {
	s.n++
	if s.n > 1 {
		s.clock += s.gapBefore(s.n)
	}
	ts := s.cfg.Start.Add(s.clock).UTC()
	u := s.rng.IntN(s.cfg.Users)
	var (
		ev     Event
		err    error
		record any
	)
	switch s.cfg.Profile {
	case ProfileLab:
		ev.UserID = "user" + strconv.Itoa(u+1)
		record = labRecord{
			UserID:         ev.UserID,
			EventTimestamp: strconv.FormatInt(ts.UnixMilli(), 10),
			EventName:      labEvents[s.rng.IntN(len(labEvents))],
			EventType:      "click",
			DeviceType:     s.cfg.DeviceType,
		}
	default:
		ev.UserID = strconv.Itoa(u + 1)
		insertion := ts.Add(time.Duration(20+s.rng.IntN(200)) * time.Microsecond)
		record = pocRecord{
			Timestamp:          ts.Format(pocTimeLayout),
			UserID:             ev.UserID,
			PixelID:            s.token(10),
			ClickID:            s.hex(16),
			InsertionTimestamp: insertion.Format(pocTimeLayout),
			EventName:          pocEvents[s.rng.IntN(len(pocEvents))],
			UserIP:             s.ips[u],
			AdditionalData: pocAdditional{
				TimeOnData:    1 + s.rng.IntN(120),
				PercentViewed: math.Round(s.rng.Float64()*1000) / 10,
				ProductID:     100000 + s.rng.IntN(900000),
				Price:         math.Round((1+s.rng.Float64()*999)*100) / 100,
			},
		}
	}
	ev.Data, err = json.Marshal(record)
	if err != nil {
		return ev, fmt.Errorf("encode event %d: %w", s.n, err)
	}
	ev.At = s.clock
	return ev, nil
}

// gapBefore is the simulated time between event n-1 and event n (n counted from 1).
func (s *source) gapBefore(n int64) time.Duration {
	c := s.cfg
	if c.Profile == ProfileLab {
		if c.PauseEvery > 0 && (n-1)%int64(c.PauseEvery) == 0 {
			return c.Pause
		}
		return c.ClickInterval
	}
	if c.Rate > 0 {
		return time.Duration(float64(time.Second) / c.Rate)
	}
	return 0
}

// The POC's timestamp layout: "2021-07-12 12:01:58.732726", UTC.
const pocTimeLayout = "2006-01-02 15:04:05.000000"

type pocRecord struct {
	Timestamp          string        `json:"timestamp"`
	UserID             string        `json:"user_id"`
	PixelID            string        `json:"pixel_id"`
	ClickID            string        `json:"click_id"`
	InsertionTimestamp string        `json:"insertion_timestamp"`
	EventName          string        `json:"event_name"`
	UserIP             string        `json:"user_ip"`
	AdditionalData     pocAdditional `json:"additional_data"`
}

type pocAdditional struct {
	TimeOnData    int     `json:"time_on_data"`
	PercentViewed float64 `json:"percent_viewed"`
	ProductID     int     `json:"product_id"`
	Price         float64 `json:"price"`
}

type labRecord struct {
	UserID         string `json:"user_id"`
	EventTimestamp string `json:"event_timestamp"`
	EventName      string `json:"event_name"`
	EventType      string `json:"event_type"`
	DeviceType     string `json:"device_type"`
}

const tokenAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

func (s *source) token(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = tokenAlphabet[s.rng.IntN(len(tokenAlphabet))]
	}
	return string(b)
}

func (s *source) hex(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(s.rng.UintN(256))
	}
	return hex.EncodeToString(b)
}

// publicIPv4 draws a global unicast IPv4 address outside private, shared, loopback, link-local,
// documentation, multicast and reserved ranges.
func (s *source) publicIPv4() string {
	for {
		v := s.rng.Uint32()
		a := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
		if isPublic(a) {
			return a.String()
		}
	}
}

var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"),
}

func isPublic(a netip.Addr) bool {
	if !a.IsGlobalUnicast() || a.IsPrivate() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}
