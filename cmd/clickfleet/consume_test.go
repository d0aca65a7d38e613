package main

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
)

func TestGeoSettingsPickTheProvider(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "absent.mmdb")
	for _, tc := range []struct {
		name    string
		gs      geoSettings
		on      bool
		wantErr string
	}{
		{name: "no provider: enrichment off", gs: geoSettings{}},
		{name: "default database absent: enrichment off", gs: geoSettings{mmdb: missing}},
		{name: "a database given but absent", gs: geoSettings{mmdb: missing, mmdbSet: true}, wantErr: "--geo-mmdb"},
		{name: "ipinfo", gs: geoSettings{mmdb: missing, ipinfoURL: "http://127.0.0.1:1"}, on: true},
		{name: "both", gs: geoSettings{mmdb: missing, mmdbSet: true, ipinfoURL: "http://127.0.0.1:1"}, wantErr: "alternatives"},
		{name: "bad ipinfo URL", gs: geoSettings{ipinfoURL: "ftp://x"}, wantErr: "--geo-ipinfo-url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, closeGeo, err := newGeoResolver(tc.gs, nil, "cf:", nil, zap.NewNop())
			if tc.wantErr != "" {
				var u usageError
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.As(err, &u) {
					t.Fatalf("err = %v, want a usage error naming %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer closeGeo()
			if (r != nil) != tc.on {
				t.Fatalf("resolver %v, want enrichment on=%v", r, tc.on)
			}
		})
	}
}

func TestNamesSyncNeedsPgDSN(t *testing.T) {
	t.Setenv("CLICKFLEET_PG_DSN", "")
	root := newRootCommand()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs([]string{"consume", "--names-sync", "--pg-dsn", "", "--http-listen", ""})
	err := root.Execute()
	if err == nil || !strings.Contains(err.Error(), "--names-sync needs --pg-dsn") {
		t.Fatalf("err = %v", err)
	}
}

// The default --geo-mmdb is the local stack's DB-IP file; when it is installed it locates the demo's
// addresses.
func TestDefaultGeoDatabase(t *testing.T) {
	path := filepath.Join("..", "..", defaultGeoMMDB)
	r, closeGeo, err := newGeoResolver(geoSettings{mmdb: path, mmdbSet: true, cacheSize: 10}, nil, "cf:", nil, zap.NewNop())
	if err != nil {
		t.Skipf("the local stack's database is not installed: %v", err)
	}
	defer closeGeo()
	loc, err := r.Lookup(t.Context(), "2.17.80.10")
	if err != nil || loc.Country != "US" || loc.City != "Chicago" {
		t.Fatalf("2.17.80.10: %+v %v, want Chicago, US", loc, err)
	}
}
