package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/spf13/cobra"
)

// newHealthcheckCommand is the container health check: the image (distroless) has no shell or curl, so
// ECS runs the binary itself against a process's /healthz.
func newHealthcheckCommand(_ *globals) *cobra.Command {
	var (
		target  string
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "healthcheck",
		Short: "Exit 0 when an HTTP endpoint (a process's /healthz) answers 2xx within --timeout, 1 otherwise",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			u, err := url.Parse(target)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return usagef("--url (CLICKFLEET_URL) must be an http(s) URL, not %q", target)
			}
			if timeout <= 0 {
				return usagef("--timeout (CLICKFLEET_TIMEOUT) must be positive, not %s", timeout)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
			if err != nil {
				return usagef("--url (CLICKFLEET_URL): %v", err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return fmt.Errorf("health check %s: %w", target, err)
			}
			defer resp.Body.Close()
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
			if resp.StatusCode/100 != 2 {
				return fmt.Errorf("health check %s: %s", target, resp.Status)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&target, "url", "http://127.0.0.1:9090/healthz", "the endpoint to check")
	f.DurationVar(&timeout, "timeout", 3*time.Second, "longest wait for the answer")
	return cmd
}
