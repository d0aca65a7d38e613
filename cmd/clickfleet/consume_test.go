package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestGeoSettingsPickTheProvider(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "absent.mmdb")
	notDB := filepath.Join(t.TempDir(), "garbage.mmdb")
	if err := os.WriteFile(notDB, []byte("not a database"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		gs      geoSettings
		on      bool
		wantErr string
	}{
		{name: "no provider: enrichment off", gs: geoSettings{}},
		{name: "a database given but absent", gs: geoSettings{mmdb: missing}, wantErr: "--geo-mmdb"},
		{name: "a database given but not one", gs: geoSettings{mmdb: notDB}, wantErr: "--geo-mmdb"},
		{name: "ipinfo", gs: geoSettings{mmdb: geoAuto, ipinfoURL: "http://127.0.0.1:1"}, on: true},
		{name: "both", gs: geoSettings{mmdb: missing, ipinfoURL: "http://127.0.0.1:1"}, wantErr: "alternatives"},
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

// --geo-mmdb auto finds the local stack's DB-IP file from a subdirectory of the source tree (the test
// runs in cmd/clickfleet, its binary in a temporary directory), and it locates the demo's addresses.
func TestDefaultGeoDatabase(t *testing.T) {
	if _, err := os.Stat(filepath.Join("..", "..", stackGeoDB)); err != nil {
		if os.Getenv("CLICKFLEET_REQUIRE_STACK") == "1" {
			t.Fatalf("the local stack's geo database is not installed (deploy/local/stack up installs it): %v", err)
		}
		t.Skipf("the local stack's database is not installed: %v", err)
	}
	core, logs := observer.New(zap.InfoLevel)
	r, closeGeo, err := newGeoResolver(geoSettings{mmdb: geoAuto, cacheSize: 10}, nil, "cf:", nil, zap.New(core))
	if err != nil || r == nil {
		t.Fatalf("auto found no database: %v", err)
	}
	defer closeGeo()
	on := logs.FilterMessage("geo enrichment on, from a database file").All()
	if len(on) != 1 || !strings.HasSuffix(on[0].ContextMap()["geo_mmdb"].(string), stackGeoDB) {
		t.Fatalf("start-up log %+v, want one line naming the database file", logs.All())
	}
	loc, err := r.Lookup(t.Context(), "2.17.80.10")
	if err != nil || loc.Country != "US" || loc.City != "Chicago" || !loc.HasCoordinates || loc.Latitude < 41 || loc.Latitude > 43 || loc.Longitude < -89 || loc.Longitude > -87 {
		t.Fatalf("2.17.80.10: %+v %v, want Chicago, US, at about 41.9 N 87.6 W", loc, err)
	}
}

// auto looks beside the binary and in the image's share directory before the source tree, and finds
// nothing in a directory that has no database.
func TestGeoCandidates(t *testing.T) {
	dir := t.TempDir()
	if got := findGeoDB(upward(dir, stackGeoDB)); got != "" {
		t.Fatalf("found %q under an empty directory", got)
	}
	share := filepath.Join(dir, "share", "clickfleet")
	if err := os.MkdirAll(share, 0o755); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(share, geoDBFile)
	if err := os.WriteFile(db, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := findGeoDB([]string{filepath.Join(dir, "bin", geoDBFile), filepath.Join(dir, "bin", "..", "share", "clickfleet", geoDBFile)}); got == "" {
		t.Fatal("the share directory's database was not found")
	}
	cands := geoCandidates()
	if len(cands) < 4 || !strings.HasSuffix(cands[0], geoDBFile) || !strings.Contains(cands[1], filepath.Join("share", "clickfleet")) {
		t.Fatalf("candidates %v: want the binary's directory first, then its share/clickfleet", cands)
	}
}

// The container image installs the binary and the geo database where --geo-mmdb auto looks: the file
// beside ../share/clickfleet of the binary's directory, with its licence.
func TestImageShipsTheGeoDatabaseWhereAutoLooks(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var bin, db string
	license := false
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "COPY" {
			continue
		}
		dst := f[len(f)-1]
		switch {
		case strings.HasSuffix(dst, "/clickfleet") && strings.Contains(dst, "/bin/"):
			bin = dst
		case strings.HasSuffix(dst, "/"+geoDBFile):
			db = dst
		case strings.HasSuffix(dst, "/DBIP-LICENSE"):
			license = true
		}
	}
	if bin == "" || db == "" || !license {
		t.Fatalf("Dockerfile: binary at %q, database at %q, licence copied %v: want all three", bin, db, license)
	}
	if want := filepath.Join(filepath.Dir(bin), "..", "share", "clickfleet", geoDBFile); filepath.Clean(want) != db {
		t.Fatalf("the image puts the database at %s, but auto looks at %s for a binary at %s", db, filepath.Clean(want), bin)
	}
}
