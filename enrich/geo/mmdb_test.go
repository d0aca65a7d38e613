package geo_test

import (
	"context"
	"net/netip"
	"testing"

	"github.com/clickfleet/clickfleet/enrich/geo"
)

func TestMMDBResolvesKnownNetworks(t *testing.T) {
	cases := []struct {
		name string
		ip   string
		want geo.Location
	}{
		{"london", "81.2.69.142", testNetworks[0].loc},
		{"mountain view", "8.8.8.8", testNetworks[1].loc},
		{"linkoping edge of a /28", "89.160.20.127", testNetworks[2].loc},
		{"just past the /28", "89.160.20.128", geo.Location{Status: geo.StatusNotFound}},
		{"country only", "1.1.1.1", testNetworks[3].loc},
		{"ipv6", "2a02:ff40::1", testNetworks[4].loc},
		{"not in the database", "9.9.9.9", geo.Location{Status: geo.StatusNotFound}},
	}
	for _, schema := range []geo.Schema{geo.SchemaGeoIP2, geo.SchemaFlat} {
		t.Run(string(schema), func(t *testing.T) {
			db := openTestMMDB(t, schema)
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					got, err := db.Lookup(context.Background(), netip.MustParseAddr(tc.ip))
					if err != nil {
						t.Fatalf("Lookup(%s): %v", tc.ip, err)
					}
					if got != tc.want {
						t.Fatalf("Lookup(%s) = %+v, want %+v", tc.ip, got, tc.want)
					}
				})
			}
		})
	}
}

func TestOpenMMDBRejectsBadSchemaAndFile(t *testing.T) {
	if _, err := geo.OpenMMDBBytes(buildMMDB(t, geo.SchemaFlat), "csv"); err == nil {
		t.Fatal("schema \"csv\" accepted")
	}
	if _, err := geo.OpenMMDB(t.TempDir()+"/missing.mmdb", geo.SchemaAuto); err == nil {
		t.Fatal("missing file accepted")
	}
}

func TestParsePublic(t *testing.T) {
	cases := []struct {
		ip     string
		public bool
	}{
		{"8.8.8.8", true}, {"2a02:ff40::1", true}, {"::ffff:81.2.69.142", true},
		{"", false}, {"not an ip", false}, {"300.1.1.1", false}, {"8.8.8.8:80", false}, {"fe80::1%eth0", false},
		{"10.1.2.3", false}, {"172.16.0.1", false}, {"192.168.1.1", false}, {"127.0.0.1", false}, {"::1", false},
		{"169.254.1.1", false}, {"100.64.0.1", false}, {"0.1.2.3", false}, {"192.0.2.1", false},
		{"198.51.100.7", false}, {"203.0.113.9", false}, {"198.18.0.1", false}, {"224.0.0.1", false},
		{"240.0.0.1", false}, {"255.255.255.255", false}, {"fc00::1", false}, {"2001:db8::1", false}, {"ff02::1", false},
		{"::", false}, {"0.0.0.0", false},
	}
	for _, tc := range cases {
		t.Run(tc.ip, func(t *testing.T) {
			if _, got := geo.ParsePublic(tc.ip); got != tc.public {
				t.Fatalf("ParsePublic(%q) public = %v, want %v", tc.ip, got, tc.public)
			}
		})
	}
}
