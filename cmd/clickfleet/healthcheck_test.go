package main

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// healthcheck exits 0 on a 2xx, 1 on another status or no answer, 2 on a bad setting.
func TestHealthcheck(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
	}))
	defer srv.Close()
	if err := runCLI(t, "healthcheck", "--url", srv.URL+"/healthz"); err != nil {
		t.Fatalf("healthy: %v", err)
	}
	status = http.StatusServiceUnavailable
	var u usageError
	if err := runCLI(t, "healthcheck", "--url", srv.URL+"/healthz"); err == nil || errors.As(err, &u) || !strings.Contains(err.Error(), "503") {
		t.Fatalf("unhealthy: err = %v, want a runtime error naming the 503", err)
	}
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	if err := runCLI(t, "healthcheck", "--url", closed.URL+"/healthz", "--timeout", "2s"); err == nil || errors.As(err, &u) {
		t.Fatalf("no server: err = %v, want a runtime error", err)
	}
	if err := runCLI(t, "healthcheck", "--url", "localhost:9090"); !errors.As(err, &u) || !strings.Contains(err.Error(), "--url (CLICKFLEET_URL)") {
		t.Fatalf("bad URL: err = %v, want a usage error naming --url", err)
	}
}
