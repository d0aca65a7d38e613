package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The dashboard refuses to serve customer names on a non-loopback address without a token or an
// authenticating proxy, and checks its access settings at start (exit 2, naming them).
func TestDashboardAccessSettings(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"every interface without a token", []string{"--listen", ":8088"},
			[]string{"--listen (CLICKFLEET_LISTEN)", "--token (CLICKFLEET_TOKEN)", "--token-file (CLICKFLEET_TOKEN_FILE)", "--trust-proxy-auth (CLICKFLEET_TRUST_PROXY_AUTH)"}},
		{"a private address without a token", []string{"--listen", "10.1.2.3:8088"}, []string{"--listen (CLICKFLEET_LISTEN) 10.1.2.3:8088 is not a loopback address"}},
		{"a short token", []string{"--listen", "0.0.0.0:8088", "--token", "short"}, []string{"--token (CLICKFLEET_TOKEN): at least 16 characters"}},
		{"token and token file", []string{"--token", "0123456789abcdef0", "--token-file", empty}, []string{"give one, not both"}},
		{"an empty token file", []string{"--listen", "0.0.0.0:8088", "--token-file", empty}, []string{"--token-file (CLICKFLEET_TOKEN_FILE)", "is empty"}},
		{"a missing token file", []string{"--token-file", filepath.Join(t.TempDir(), "nope")}, []string{"--token-file (CLICKFLEET_TOKEN_FILE)"}},
		{"a worker URL", []string{"--workers", "ftp://x:1"}, []string{"--workers (CLICKFLEET_WORKERS)"}},
		{"the refresh interval", []string{"--refresh-interval", "10ms"}, []string{"--refresh-interval (CLICKFLEET_REFRESH_INTERVAL)"}},
		{"the lake", []string{"--lake-url", "http://x/"}, []string{"--lake-url (CLICKFLEET_LAKE_URL)"}},
		{"a busy or bad listen address", []string{"--listen", "127.0.0.1:99999"}, []string{"--listen (CLICKFLEET_LISTEN)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("AWS_REGION", "us-east-1")
			err := runCLI(t, append([]string{"dashboard", "--cache-dir", t.TempDir()}, tc.args...)...)
			var u usageError
			if !errors.As(err, &u) {
				t.Fatalf("err = %v, want a usage error (exit 2)", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v, want it to name %s", err, w)
				}
			}
			if strings.Contains(err.Error(), "0123456789abcdef0") {
				t.Errorf("the error repeats the token: %v", err)
			}
		})
	}
}
