package geo

import (
	"context"
	"errors"
	"net/netip"
)

// Status says how a Location was decided.
type Status uint8

// The statuses of a Location. The zero value is StatusUnavailable, so a Location nobody filled in never
// claims an answer.
const (
	// StatusUnavailable: no answer now (the provider failed, timed out, its circuit is open, too many
	// lookups are pending, or the Resolver is closed). Never cached: ask again later.
	StatusUnavailable Status = iota
	// StatusFound: the provider knows the address; Country is set, Region and City when known.
	StatusFound
	// StatusNotFound: the provider answered that it does not know the address. Cached, for a shorter time.
	StatusNotFound
	// StatusUnknown: the address is malformed, private or reserved; nothing was looked up.
	StatusUnknown
)

// String returns "unavailable", "found", "not_found" or "unknown": the values to write into an event.
func (s Status) String() string {
	switch s {
	case StatusFound:
		return "found"
	case StatusNotFound:
		return "not_found"
	case StatusUnknown:
		return "unknown"
	default:
		return "unavailable"
	}
}

// Location is where an IP address is. Country is an ISO 3166-1 alpha-2 code (e.g. "US"); Region is the
// first-level subdivision's name (e.g. "California"); City its name (e.g. "Riverside"). All three are empty
// unless Status is StatusFound; Region and City may be empty even then.
type Location struct {
	Country string
	Region  string
	City    string
	// Latitude and Longitude place the address when HasCoordinates (the provider gave them).
	Latitude, Longitude float64
	HasCoordinates      bool
	Status              Status
}

// withCoordinates returns loc placed at lat, lon, unless both are zero (what a record without coordinates
// decodes to).
func (loc Location) withCoordinates(lat, lon float64) Location {
	if lat != 0 || lon != 0 {
		loc.Latitude, loc.Longitude, loc.HasCoordinates = lat, lon, true
	}
	return loc
}

// Provider answers a lookup of one public address. It returns a Location with StatusFound or
// StatusNotFound, or an error when it cannot answer now (the Resolver then reports StatusUnavailable and
// caches nothing). Implementations must be safe for concurrent use and honour ctx.
type Provider interface {
	Lookup(ctx context.Context, ip netip.Addr) (Location, error)
}

// ErrCircuitOpen is returned (wrapped) by a provider whose circuit breaker is open: it did not try.
var ErrCircuitOpen = errors.New("geo: provider circuit open")

// ErrBusy is returned (wrapped) when too many lookups are already in flight.
var ErrBusy = errors.New("geo: lookups busy")

// ErrProvider wraps a provider's failure to answer (transport error, timeout, 5xx, 429, bad token).
var ErrProvider = errors.New("geo: provider failed")

// nonPublic lists IPv4 and IPv6 ranges that netip's predicates do not already exclude and that no
// geolocation database places anywhere.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // shared address space (CGNAT)
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // TEST-NET-1
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // TEST-NET-2
	netip.MustParsePrefix("203.0.113.0/24"),  // TEST-NET-3
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, and the broadcast address
	netip.MustParsePrefix("2001:db8::/32"),   // IPv6 documentation
	netip.MustParsePrefix("2001::/23"),       // IETF protocol assignments (Teredo, ORCHID, …)
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
	netip.MustParsePrefix("100::/64"),        // discard-only
	netip.MustParsePrefix("3fff::/20"),       // IPv6 documentation (RFC 9637)
	netip.MustParsePrefix("5f00::/16"),       // SRv6 SIDs
}

// ParsePublic parses s as an IPv4 or IPv6 address (IPv4-mapped IPv6 becomes IPv4; a zone is refused) and
// reports whether it is a public unicast address worth looking up. Loopback, private, link-local,
// multicast, unspecified, shared, documentation, benchmarking and reserved addresses are not.
func ParsePublic(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	a = a.Unmap()
	return a, IsPublic(a)
}

// IsPublic reports whether a is a public unicast address that a geolocation database may place: not
// loopback, private, link-local, multicast, unspecified, shared, documentation, benchmarking or reserved.
func IsPublic(a netip.Addr) bool {
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
