package geo

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/oschwald/maxminddb-golang/v2"
)

// Schema is the record layout of an MMDB file.
type Schema string

// The record layouts MMDB reads.
const (
	// SchemaAuto picks SchemaGeoIP2 for databases whose type names GeoIP2, GeoLite2, GeoIP or DBIP
	// (e.g. "GeoLite2-City", "DBIP-City-Lite"), else SchemaFlat.
	SchemaAuto Schema = ""
	// SchemaGeoIP2: MaxMind's City layout — country.iso_code, subdivisions[0].names.en, city.names.en.
	SchemaGeoIP2 Schema = "geoip2"
	// SchemaFlat: the layout of npm @ip-location-db/*-mmdb — country_code, state1, city.
	SchemaFlat Schema = "flat"
)

// MMDB is a Provider reading a MaxMind DB file (memory-mapped). Safe for concurrent use; lookups take
// about a microsecond and never fail for a readable database.
type MMDB struct {
	db     *maxminddb.Reader
	schema Schema
}

// OpenMMDB opens the database file at path (this reads the file's metadata) and picks its schema (see
// SchemaAuto). Close it when done.
func OpenMMDB(path string, schema Schema) (*MMDB, error) {
	db, err := maxminddb.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open geo database %s: %w", path, err)
	}
	m, err := newMMDB(db, schema)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("geo database %s: %w", path, err)
	}
	return m, nil
}

// OpenMMDBBytes is OpenMMDB for a database already in memory (b must not change while in use).
func OpenMMDBBytes(b []byte, schema Schema) (*MMDB, error) {
	db, err := maxminddb.OpenBytes(b)
	if err != nil {
		return nil, fmt.Errorf("open geo database: %w", err)
	}
	return newMMDB(db, schema)
}

func newMMDB(db *maxminddb.Reader, schema Schema) (*MMDB, error) {
	switch schema {
	case SchemaAuto:
		t := strings.ToLower(db.Metadata.DatabaseType)
		schema = SchemaFlat
		for _, p := range []string{"geoip2", "geolite2", "geoip", "dbip"} {
			if strings.Contains(t, p) {
				schema = SchemaGeoIP2
			}
		}
	case SchemaGeoIP2, SchemaFlat:
	default:
		return nil, fmt.Errorf("%w: schema must be %q, %q or empty (auto), not %q", ErrInvalidConfig, SchemaGeoIP2, SchemaFlat, schema)
	}
	return &MMDB{db: db, schema: schema}, nil
}

// Schema returns the record layout in use.
func (m *MMDB) Schema() Schema { return m.schema }

// DatabaseType returns the database's own type name from its metadata (e.g. "GeoLite2-City").
func (m *MMDB) DatabaseType() string { return m.db.Metadata.DatabaseType }

type names struct {
	En string `maxminddb:"en"`
}

type geoip2Record struct {
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
	Subdivisions []struct {
		Names names `maxminddb:"names"`
	} `maxminddb:"subdivisions,maxsize:8"`
	City struct {
		Names names `maxminddb:"names"`
	} `maxminddb:"city"`
	Location struct {
		Latitude  float64 `maxminddb:"latitude"`
		Longitude float64 `maxminddb:"longitude"`
	} `maxminddb:"location"`
}

type flatRecord struct {
	CountryCode string  `maxminddb:"country_code"`
	State1      string  `maxminddb:"state1"`
	City        string  `maxminddb:"city"`
	Latitude    float64 `maxminddb:"latitude"`
	Longitude   float64 `maxminddb:"longitude"`
}

// Lookup answers StatusFound with the record's country, region, city and coordinates (when it has them), or StatusNotFound when the
// database has no record (or one without a country) for ip. It fails only on a corrupt database.
func (m *MMDB) Lookup(_ context.Context, ip netip.Addr) (Location, error) {
	res := m.db.Lookup(ip)
	if err := res.Err(); err != nil {
		return Location{}, fmt.Errorf("%w: mmdb lookup %s: %w", ErrProvider, ip, err)
	}
	if !res.Found() {
		return Location{Status: StatusNotFound}, nil
	}
	return m.decode(res)
}

func (m *MMDB) decode(res maxminddb.Result) (Location, error) {
	ip := res.Prefix()
	var loc Location
	switch m.schema {
	case SchemaGeoIP2:
		var rec geoip2Record
		if err := res.Decode(&rec); err != nil {
			return Location{}, fmt.Errorf("%w: mmdb decode %s: %w", ErrProvider, ip, err)
		}
		loc = Location{Country: rec.Country.ISOCode, City: rec.City.Names.En}.withCoordinates(rec.Location.Latitude, rec.Location.Longitude)
		if len(rec.Subdivisions) > 0 {
			loc.Region = rec.Subdivisions[0].Names.En
		}
	default:
		var rec flatRecord
		if err := res.Decode(&rec); err != nil {
			return Location{}, fmt.Errorf("%w: mmdb decode %s: %w", ErrProvider, ip, err)
		}
		loc = Location{Country: rec.CountryCode, Region: rec.State1, City: rec.City}.withCoordinates(rec.Latitude, rec.Longitude)
	}
	if loc.Country == "" {
		return Location{Status: StatusNotFound}, nil
	}
	loc.Status = StatusFound
	return loc, nil
}

// Networks calls fn for each network in the database that is within prefix and has a country, with its
// Location, until fn returns false. For sampling test addresses and checking lists against a database.
func (m *MMDB) Networks(prefix netip.Prefix, fn func(netip.Prefix, Location) bool) error {
	for res := range m.db.NetworksWithin(prefix) {
		if err := res.Err(); err != nil {
			return fmt.Errorf("walk geo database within %s: %w", prefix, err)
		}
		loc, err := m.decode(res)
		if err != nil {
			return err
		}
		if loc.Status == StatusFound && !fn(res.Prefix(), loc) {
			return nil
		}
	}
	return nil
}

// Close releases the database. Lookups after Close fail.
func (m *MMDB) Close() error { return m.db.Close() }
