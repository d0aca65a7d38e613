package main

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The routes file reaches setup's streams, and its errors name --routes-file.
func TestRoutesFileGivesSetupItsStreams(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", "routes:\n  - name: purchases\n    stream: clickstream-purchases\n    when: price > 100\n    fields: [user_id, price]\n    enrich: false\n  - name: offers\n    stream: clickstream-offers\n    when: percent_viewed > 60\n")
	rf := routeFlags{file: good}
	rs, err := rf.load()
	if err != nil {
		t.Fatal(err)
	}
	streams, err := compileRoutes(rs, "o", "ViewContent", 60, rf.names())
	if err != nil || !slices.Equal(streams, []string{"clickstream-purchases", "clickstream-offers"}) {
		t.Fatalf("streams %v, %v", streams, err)
	}
	if streams, err := compileRoutes(nil, "my-offers", "ViewContent", 60, rf.names()); err != nil || !slices.Equal(streams, []string{"my-offers"}) {
		t.Fatalf("default route streams %v, %v", streams, err)
	}
	for _, tc := range []struct{ name, body, want string }{
		{"unknown key", "routes:\n  - name: a\n    stream: s\n    wen: 'true'\n", "--routes-file (CLICKFLEET_ROUTES_FILE): routes file: line 4: field wen not found"},
		{"bad predicate", "routes:\n  - name: a\n    stream: s\n    when: percent_viewed > 'x'\n", `--routes-file (CLICKFLEET_ROUTES_FILE): route "a": line 1, column 16 (offset 15)`},
		{"unknown projected field", "routes:\n  - name: a\n    stream: s\n    when: 'true'\n    fields: [nope]\n", `--routes-file (CLICKFLEET_ROUTES_FILE): route "a": fields: unknown field "nope"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rf := routeFlags{file: write(tc.name+".yaml", tc.body)}
			rs, err := rf.load()
			if err == nil {
				_, err = compileRoutes(rs, "o", "ViewContent", 60, rf.names())
			}
			var u usageError
			if !errors.As(err, &u) || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("err = %v, want a usage error starting %q", err, tc.want)
			}
		})
	}
	if _, err := (&routeFlags{file: good, routes: []string{"a=s:true"}}).load(); err == nil || !strings.Contains(err.Error(), "alternatives") {
		t.Fatalf("both flags: %v", err)
	}
}
