package dashboard

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"
)

// TokenCookie is the cookie the page keeps the access token in, once given as ?token=.
const TokenCookie = "clickfleet_dashboard_token"

// ProxyIdentityHeader is the header an AWS Application Load Balancer's authenticate action adds to every
// request it lets through (the user's subject); with TrustProxyAuth, requests without it are refused.
const ProxyIdentityHeader = "X-Amzn-Oidc-Identity"

// Config configures a Server. Zero values take the documented defaults.
type Config struct {
	// Datasets computes the charts. Required (an implementation may answer every query with a
	// *SourceError, e.g. in a build without DuckDB).
	Datasets Datasets
	// Fleet is the live panel's source; nil: the panel says it is not configured.
	Fleet *Fleet
	// Reconciliations gives the last reconciliation's result (/api/reconcile); nil: the panel says it is
	// not configured.
	Reconciliations Reconciliations
	// Token, when set, must accompany every request but /healthz: as "Authorization: Bearer <token>",
	// the cookie TokenCookie, or ?token= (which sets the cookie and redirects to the URL without it).
	// Compared in constant time; never logged.
	Token string
	// TrustProxyAuth serves requests that carry ProxyIdentityHeader without a token: an authenticating
	// proxy (the ALB of the AWS template) stands in front.
	TrustProxyAuth bool
	// RefreshInterval is how often the page reloads its data; also how long a chart's rows are reused.
	// Default: 30s.
	RefreshInterval time.Duration
	// FleetRefreshInterval is how often the page reloads the fleet panel. Default: the Fleet's interval,
	// or RefreshInterval.
	FleetRefreshInterval time.Duration
	// Lake describes the lake for the page's footer (e.g. s3://clickfleet-lake/). Default: none.
	Lake string
	// Now is the clock. Default: time.Now.
	Now func() time.Time
	// Logger receives structured logs. Default: zap.NewNop().
	Logger *zap.Logger
}

// Server serves the dashboard. Create it with New; its Handler is safe for concurrent use.
type Server struct {
	cfg      Config
	ds       Datasets
	log      *zap.Logger
	tokenSum [sha256.Size]byte
	mux      *http.ServeMux
}

// New checks cfg and returns a Server. It does no I/O.
func New(cfg Config) (*Server, error) {
	if cfg.Datasets == nil {
		return nil, errors.New("dashboard: Datasets is required")
	}
	if cfg.RefreshInterval == 0 {
		cfg.RefreshInterval = 30 * time.Second
	}
	if cfg.RefreshInterval < time.Second {
		return nil, fmt.Errorf("dashboard: RefreshInterval must be at least 1s, got %s", cfg.RefreshInterval)
	}
	if cfg.FleetRefreshInterval == 0 {
		cfg.FleetRefreshInterval = cfg.RefreshInterval
		if cfg.Fleet != nil {
			cfg.FleetRefreshInterval = cfg.Fleet.cfg.Interval
		}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	s := &Server{cfg: cfg, log: cfg.Logger.Named("dashboard"), ds: newCached(cfg.Datasets, cfg.RefreshInterval, cfg.Now)}
	if cfg.Token != "" {
		s.tokenSum = sha256.Sum256([]byte(cfg.Token))
	}
	static, err := fs.Sub(assets, "static")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.Handle("GET /static/", s.auth(http.StripPrefix("/static/", cacheFor(time.Hour, http.FileServerFS(static)))))
	mux.Handle("GET /{$}", s.auth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		http.ServeFileFS(w, r, static, "index.html")
	})))
	mux.Handle("GET /api/config", s.auth(http.HandlerFunc(s.config)))
	mux.Handle("GET /api/charts", s.auth(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, Charts) })))
	mux.Handle("GET /api/fleet", s.auth(http.HandlerFunc(s.fleet)))
	mux.Handle("GET /api/reconcile", s.auth(http.HandlerFunc(s.reconcile)))
	mux.Handle("GET /api/{chart}", s.auth(http.HandlerFunc(s.chart)))
	s.mux = mux
	return s, nil
}

// Handler returns the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.mux }

// Serve serves the dashboard on ln until ctx ends, then shuts down within 5s.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s.mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	})
	defer stop()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func cacheFor(d time.Duration, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", fmt.Sprintf("private, max-age=%d", int(d.Seconds())))
		h.ServeHTTP(w, r)
	})
}

// auth lets a request through when no token is configured and proxy auth is off (loopback use), when it
// carries the token, or — with TrustProxyAuth — the proxy's identity header.
func (s *Server) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Token == "" && !s.cfg.TrustProxyAuth {
			next.ServeHTTP(w, r)
			return
		}
		if s.cfg.Token != "" {
			if q := r.URL.Query().Get("token"); q != "" && r.URL.Path == "/" {
				if !s.tokenOK(q) {
					s.deny(w, r, "wrong token")
					return
				}
				http.SetCookie(w, &http.Cookie{Name: TokenCookie, Value: q, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
					Secure: r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https"})
				u := *r.URL
				v := u.Query()
				v.Del("token")
				u.RawQuery = v.Encode()
				http.Redirect(w, r, u.RequestURI(), http.StatusSeeOther)
				return
			}
			if t, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
				if s.tokenOK(t) {
					next.ServeHTTP(w, r)
					return
				}
				s.deny(w, r, "wrong token")
				return
			}
			if c, err := r.Cookie(TokenCookie); err == nil {
				if s.tokenOK(c.Value) {
					next.ServeHTTP(w, r)
					return
				}
				s.deny(w, r, "wrong token")
				return
			}
		}
		if s.cfg.TrustProxyAuth && r.Header.Get(ProxyIdentityHeader) != "" {
			next.ServeHTTP(w, r)
			return
		}
		if s.cfg.Token == "" {
			s.deny(w, r, "no identity from the authenticating proxy ("+ProxyIdentityHeader+" missing)")
			return
		}
		s.deny(w, r, "a token is required")
	})
}

func (s *Server) tokenOK(t string) bool {
	sum := sha256.Sum256([]byte(t))
	return subtle.ConstantTimeCompare(sum[:], s.tokenSum[:]) == 1
}

// deny answers 401: JSON for /api, a small form asking for the token for the page.
func (s *Server) deny(w http.ResponseWriter, r *http.Request, why string) {
	s.log.Info("request refused", zap.String("path", r.URL.Path), zap.String("remote", r.RemoteAddr), zap.String("reason", why))
	if strings.HasPrefix(r.URL.Path, "/api/") || s.cfg.Token == "" {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "unauthorized: " + why})
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusUnauthorized)
	fmt.Fprintf(w, `<!doctype html><meta charset="utf-8"><title>clickfleet dashboard</title>
<form method="get" action="/"><p>clickfleet dashboard: %s.</p><label>Access token <input name="token" type="password" autofocus></label> <button>Open</button></form>`, why)
}

func (s *Server) config(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"charts":                  Charts,
		"refresh_seconds":         s.cfg.RefreshInterval.Seconds(),
		"fleet_refresh_seconds":   s.cfg.FleetRefreshInterval.Seconds(),
		"fleet_configured":        s.cfg.Fleet != nil,
		"reconcile_configured":    s.cfg.Reconciliations != nil,
		"lake":                    s.cfg.Lake,
		"default_range_hours":     24,
		"server_time":             s.cfg.Now().UTC(),
		"time_layouts_accepted":   "RFC 3339, 2026-12-01T10:00, 2026-12-01T10 or 2026-12-01 (UTC)",
		"geo_attribution_html":    `<a href="https://db-ip.com">IP Geolocation by DB-IP</a>`,
		"geo_attribution_licence": "https://creativecommons.org/licenses/by/4.0/",
	})
}

// timeLayouts are the forms from and to accept (report's --from and --to): UTC unless they carry an
// offset.
var timeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02T15", "2006-01-02"}

// RangeError is a bad from or to.
type RangeError struct {
	Field  string // "from" or "to"
	Reason string
}

func (e *RangeError) Error() string { return e.Field + ": " + e.Reason }

// ParseRange reads from and to (each optional) as the report's --from and --to: RFC 3339,
// 2026-12-01T10:00, 2026-12-01T10 or 2026-12-01, UTC. From is rounded down to its hour; to must be after
// it. Errors are *RangeError naming the field.
func ParseRange(from, to string) (Range, error) {
	var r Range
	parse := func(field, v string) (time.Time, error) {
		if v == "" {
			return time.Time{}, nil
		}
		for _, l := range timeLayouts {
			if t, err := time.Parse(l, v); err == nil {
				return t.UTC(), nil
			}
		}
		return time.Time{}, &RangeError{Field: field, Reason: fmt.Sprintf("%q is not a time: use RFC 3339 (2026-12-01T10:00:00Z), 2026-12-01T10:00, 2026-12-01T10 or 2026-12-01 (UTC)", v)}
	}
	var err error
	if r.From, err = parse("from", from); err != nil {
		return r, err
	}
	if r.To, err = parse("to", to); err != nil {
		return r, err
	}
	r.From = r.From.Truncate(time.Hour)
	if !r.From.IsZero() && !r.To.IsZero() && !r.From.Before(r.To) {
		return r, &RangeError{Field: "to", Reason: fmt.Sprintf("must be after from (the range is whole hours: from %s, to %s)", r.From.Format(time.RFC3339), r.To.Format(time.RFC3339))}
	}
	return r, nil
}

func (s *Server) chart(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("chart")
	if !slices.Contains(Charts, name) {
		writeJSON(w, http.StatusNotFound, map[string]any{"error": fmt.Sprintf("no chart %q; the charts are %s", name, strings.Join(Charts, ", "))})
		return
	}
	q := r.URL.Query()
	rg, err := ParseRange(q.Get("from"), q.Get("to"))
	if err != nil {
		var re *RangeError
		errors.As(err, &re)
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": err.Error(), "field": re.Field})
		return
	}
	body := map[string]any{"chart": name, "from": timeOrNil(rg.From), "to": timeOrNil(rg.To)}
	t, err := s.ds.Query(r.Context(), name, rg)
	var se *SourceError
	switch {
	case errors.Is(err, ErrNoData):
		body["columns"], body["rows"], body["empty"], body["message"] = []string{}, []any{}, true, err.Error()
	case errors.As(err, &se):
		s.log.Warn("a chart's source is down", zap.String("chart", name), zap.String("source", se.Source), zap.Error(se.Err))
		body["error"], body["source"], body["setting"] = se.Error(), se.Source, se.Setting
		w.Header().Set("Retry-After", fmt.Sprint(int(s.cfg.RefreshInterval.Seconds())))
		writeJSON(w, http.StatusServiceUnavailable, body)
		return
	case err != nil:
		if r.Context().Err() != nil {
			return
		}
		s.log.Error("a chart failed", zap.String("chart", name), zap.Error(err))
		body["error"] = err.Error()
		writeJSON(w, http.StatusInternalServerError, body)
		return
	default:
		body["columns"], body["rows"], body["empty"] = t.Columns, rowObjects(t), len(t.Rows) == 0
	}
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) fleet(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Fleet == nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": "the fleet panel is not configured: set --workers and --lease-table / --archive-lease-table", "source": "fleet"})
		return
	}
	snap := s.cfg.Fleet.Latest(r.Context())
	age := s.cfg.Now().Sub(snap.Time)
	writeJSON(w, http.StatusOK, map[string]any{"snapshot": snap, "age_seconds": age.Seconds(),
		"stale": age > 3*s.cfg.Fleet.cfg.Interval+s.cfg.Fleet.cfg.Timeout})
}

// rowObjects turns rows into objects keyed by column, times as RFC 3339 with milliseconds (as the
// report's JSON output).
func rowObjects(t *Table) []map[string]any {
	out := make([]map[string]any, len(t.Rows))
	for i, row := range t.Rows {
		m := make(map[string]any, len(row))
		for j, v := range row {
			if tm, ok := v.(time.Time); ok {
				v = tm.UTC().Format("2006-01-02T15:04:05.000Z")
			}
			m[t.Columns[j]] = v
		}
		out[i] = m
	}
	return out
}

func timeOrNil(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(time.RFC3339)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

// IsLoopback reports whether a listen address (host:port) binds to loopback only: 127.0.0.0/8, ::1 or
// localhost. An empty host (every interface) is not.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
