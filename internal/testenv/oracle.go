package testenv

import (
	"context"
	"testing"

	"github.com/clickfleet/clickfleet/internal/oracle"
	"github.com/clickfleet/clickfleet/messages"
)

// OracleSessions computes the sessions of evs with internal/oracle (PostgreSQL's LAG over each user's
// events in stream order) on the server named by CLICKFLEET_PG_DSN: the independent answer tests compare
// a processor's sessions with.
func OracleSessions(t testing.TB, evs []oracle.Event) map[string]messages.Session {
	t.Helper()
	ctx := context.Background()
	conn, err := Postgres(t).Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	out, err := oracle.Sessions(ctx, conn.Conn(), evs)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
