package names_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/clickfleet/clickfleet/actors/session"
	"github.com/clickfleet/clickfleet/enrich/names"
	"github.com/clickfleet/clickfleet/internal/provision"
	"github.com/clickfleet/clickfleet/internal/retry"
	"github.com/clickfleet/clickfleet/internal/testenv"
)

// freshDatabase creates a database of its own on the stack's PostgreSQL (so the customers table is the
// test's alone), without schema, and drops it when the test ends. It returns its DSN.
func freshDatabase(t *testing.T) string { return testenv.EmptyDatabase(t) }

func newPool(t *testing.T, dsn string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// runSyncer starts a Syncer and stops it (waiting for Run to return nil) when the test ends.
func runSyncer(t *testing.T, cfg names.Config) *names.Syncer {
	t.Helper()
	s, err := names.New(cfg)
	if err != nil {
		t.Fatalf("names.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v after cancel, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return within 10s of cancel")
		}
	})
	return s
}

func userFields(rdb *redis.Client, prefix, id string) map[string]string {
	return rdb.HGetAll(context.Background(), session.UserKey(prefix, id)).Val()
}

// hasName waits until the user's hash holds the name and price (or, with name "", holds neither).
func hasName(t *testing.T, rdb *redis.Client, prefix, id, name, price string, within time.Duration) {
	t.Helper()
	testenv.WaitForState(t, fmt.Sprintf("user %s named %q, price %q in Redis", id, name, price), within, func() (bool, string) {
		h := userFields(rdb, prefix, id)
		n, hasN := h[session.FieldName]
		p, hasP := h[session.FieldPricePerClick]
		if name == "" {
			return !hasN && !hasP, fmt.Sprint(h)
		}
		return n == name && p == price, fmt.Sprint(h)
	})
}

// Inserts, renames and deletes reach Redis through NOTIFY within 10 s (the periodic copy is an hour
// away), touching only name and price_per_click; customers present before start arrive by the first copy;
// a user's other fields survive a delete.
func TestSyncerAppliesChangesAtOnce(t *testing.T) {
	rdb := testenv.Redis(t)
	dsn := freshDatabase(t)
	pool := newPool(t, dsn)
	ctx := context.Background()
	if err := provision.EnsureCustomersSchema(ctx, pool); err != nil {
		t.Fatal(err)
	}
	prefix := testenv.Name(t, "cf") + ":"
	t.Cleanup(func() {
		keys := rdb.Keys(context.Background(), prefix+"*").Val()
		if len(keys) > 0 {
			rdb.Del(context.Background(), keys...)
		}
	})
	// Before start: one customer in PostgreSQL, and a stale name in Redis for a customer that no longer exists.
	if _, err := pool.Exec(ctx, `INSERT INTO customers (customer_id, name, price_per_click) VALUES ('old', 'Old Timer', 0.5)`); err != nil {
		t.Fatal(err)
	}
	rdb.HSet(ctx, session.UserKey(prefix, "gone"), session.FieldName, "Ghost", session.FieldPricePerClick, "1", "last_access_ms", "42")

	s := runSyncer(t, names.Config{Pool: pool, Redis: rdb, Prefix: prefix, Interval: time.Hour})
	hasName(t, rdb, prefix, "old", "Old Timer", "0.5000", 5*time.Second)
	hasName(t, rdb, prefix, "gone", "", "", 10*time.Second)
	if got := userFields(rdb, prefix, "gone")["last_access_ms"]; got != "42" {
		t.Fatalf("the actors' field last_access_ms of a deleted customer = %q, want it kept", got)
	}
	testenv.WaitFor(t, "Ready", 10*time.Second, s.Ready)

	// An actor's fields in the same hash must survive every write.
	rdb.HSet(ctx, session.UserKey(prefix, "35"), "last_access_ms", "1700000000000", "country", "US")
	steps := []struct {
		name, sql, wantName, wantPrice string
	}{
		{"insert", `INSERT INTO customers (customer_id, name, price_per_click) VALUES ('35', 'Semyon Ryan', 0.25)`, "Semyon Ryan", "0.2500"},
		{"rename", `UPDATE customers SET name = 'Semyon Rayan', updated_at = now() WHERE customer_id = '35'`, "Semyon Rayan", "0.2500"},
		{"reprice", `UPDATE customers SET price_per_click = 1.125 WHERE customer_id = '35'`, "Semyon Rayan", "1.1250"},
		{"delete", `DELETE FROM customers WHERE customer_id = '35'`, "", ""},
		{"sign up again", `INSERT INTO customers (customer_id, name, price_per_click) VALUES ('35', 'Semyon Ryan', 0.3)`, "Semyon Ryan", "0.3000"},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if _, err := pool.Exec(ctx, st.sql); err != nil {
				t.Fatal(err)
			}
			hasName(t, rdb, prefix, "35", st.wantName, st.wantPrice, 10*time.Second)
			h := userFields(rdb, prefix, "35")
			if h["last_access_ms"] != "1700000000000" || h["country"] != "US" {
				t.Fatalf("the actors' fields were touched: %v", h)
			}
			c, ok := s.Lookup("35")
			if (st.wantName != "") != ok || c.Name != st.wantName || c.PricePerClick != st.wantPrice {
				t.Fatalf("Lookup(35) = %+v, %v", c, ok)
			}
		})
	}
}

// LoadDemo fills customers 1..n with names and prices, idempotently; the Syncer copies them.
func TestLoadDemo(t *testing.T) {
	rdb := testenv.Redis(t)
	pool := newPool(t, freshDatabase(t))
	ctx := context.Background()
	if err := provision.EnsureCustomersSchema(ctx, pool); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := provision.LoadDemo(ctx, pool, 300); err != nil {
			t.Fatal(err)
		}
	}
	var n, distinct int
	if err := pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT name) FROM customers WHERE name <> '' AND price_per_click > 0`).Scan(&n, &distinct); err != nil {
		t.Fatal(err)
	}
	if n != 300 || distinct < 250 {
		t.Fatalf("%d demo customers with %d distinct names, want 300 with mostly distinct names", n, distinct)
	}
	prefix := testenv.Name(t, "cf") + ":"
	t.Cleanup(func() {
		keys := rdb.Keys(context.Background(), prefix+"*").Val()
		if len(keys) > 0 {
			rdb.Del(context.Background(), keys...)
		}
	})
	want := provision.DemoCustomers(300)[299]
	runSyncer(t, names.Config{Pool: pool, Redis: rdb, Prefix: prefix, Interval: time.Hour})
	hasName(t, rdb, prefix, "300", want.Name, want.PricePerClick+"00", 5*time.Second)
	if err := provision.LoadDemo(ctx, pool, 0); err == nil {
		t.Fatal("LoadDemo(0) accepted")
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := names.New(names.Config{}); err == nil {
		t.Fatal("empty config accepted")
	}
}

// A database without the customers table is waited for, not a reason to stop: Run keeps going and the
// Syncer is not Ready (it logs that it waits), until the schema appears; then the first copy puts the
// customers in Redis and it is Ready.
func TestSyncerWaitsForTheTable(t *testing.T) {
	rdb := testenv.Redis(t)
	pool := newPool(t, freshDatabase(t)) // no customers schema yet
	prefix := testenv.Name(t, "cf") + ":"
	t.Cleanup(func() {
		if keys := rdb.Keys(context.Background(), prefix+"*").Val(); len(keys) > 0 {
			rdb.Del(context.Background(), keys...)
		}
	})
	core, logs := observer.New(zap.WarnLevel)
	s, err := names.New(names.Config{Pool: pool, Redis: rdb, Prefix: prefix, Interval: time.Hour, MaxBackoff: 500 * time.Millisecond, Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	// Two failed copies at least: the warning comes with the first, and Run is still running after it.
	testenv.WaitFor(t, "the warning that the Syncer waits for the customers table", 20*time.Second, func() bool {
		return logs.FilterMessageSnippet("waiting for the customers table").Len() > 0
	})
	select {
	case err := <-done:
		t.Fatalf("Run returned %v while the customers table was missing, want it to wait", err)
	default:
	}
	if s.Ready() {
		t.Fatal("Ready before the customers table exists")
	}
	if n := logs.FilterMessageSnippet("waiting for the customers table").Len(); n != 1 {
		t.Errorf("%d warnings while waiting, want 1 (at most one a minute)", n)
	}
	if err := provision.EnsureCustomersSchema(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO customers (customer_id, name, price_per_click) VALUES ('7', 'Ada Byron', 0.5)`); err != nil {
		t.Fatal(err)
	}
	hasName(t, rdb, prefix, "7", "Ada Byron", "0.5000", 15*time.Second)
	testenv.WaitFor(t, "Ready after the table appeared", 10*time.Second, s.Ready)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v after cancel, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s of cancel")
	}
}

// Other failures that repeat still end Run: a table the user may not read (permission denied, 42501).
func TestSyncerStopsWhenTheTableIsDenied(t *testing.T) {
	rdb := testenv.Redis(t)
	admin := testenv.Postgres(t)
	dsn := freshDatabase(t)
	owner := newPool(t, dsn)
	ctx := context.Background()
	if err := provision.EnsureCustomersSchema(ctx, owner); err != nil {
		t.Fatal(err)
	}
	role := strings.ReplaceAll(testenv.Name(t, "r"), "-", "_")
	if _, err := owner.Exec(ctx, "CREATE ROLE "+pgx.Identifier{role}.Sanitize()+" LOGIN PASSWORD 'denied-reader'"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = admin.Exec(context.Background(), "DROP ROLE IF EXISTS "+pgx.Identifier{role}.Sanitize())
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(role, "denied-reader")
	pool := newPool(t, u.String())
	s, err := names.New(names.Config{Pool: pool, Redis: rdb, Prefix: testenv.Name(t, "cf") + ":", Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err = s.Run(runCtx)
	if runCtx.Err() != nil {
		t.Fatal("Run kept retrying a table it may not read until the test's deadline")
	}
	if !retry.IsPermanent(err) || !strings.Contains(err.Error(), "customers") {
		t.Fatalf("Run returned %v, want a permanent error naming the customers table", err)
	}
}
