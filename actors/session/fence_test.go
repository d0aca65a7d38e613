package session_test

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/clickfleet/clickfleet/actors/session"
	"github.com/clickfleet/clickfleet/internal/testenv"
)

// dropAtCleanup deletes the test's keys (under prefix) when it ends.
func dropAtCleanup(t *testing.T, rdb *redis.Client, prefix string) {
	t.Cleanup(func() {
		ctx := context.Background()
		if keys, _ := rdb.Keys(ctx, prefix+"*").Result(); len(keys) > 0 {
			rdb.Del(ctx, keys...)
		}
	})
}

// The fence script against a real Redis: a raise sets the fence to the epoch unless it is higher; each
// shard's fence is its own (a split's children do not inherit the parent's); the reset form sets it,
// even lower, only if it still holds the value the caller saw.
func TestFenceScript(t *testing.T) {
	ctx := context.Background()
	rdb := testenv.Redis(t)
	prefix := testenv.Name(t, "f") + ":"
	dropAtCleanup(t, rdb, prefix)
	fence := redis.NewScript(session.FenceScript)
	const parent, child = "shardId-000000000000", "shardId-000000000001"
	raise := func(shard string, epoch int64, seen string) int64 {
		t.Helper()
		n, err := fence.Run(ctx, rdb, []string{session.FenceKey(prefix, shard)}, strconv.FormatInt(epoch, 10), seen).Int64()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if got := raise(parent, 5, ""); got != 5 {
		t.Fatalf("raise to 5: fence %d", got)
	}
	if got := raise(parent, 3, ""); got != 5 {
		t.Fatalf("raise to 3 after 5: fence %d, want it to stay 5", got)
	}
	if got := raise(parent, 6, ""); got != 6 {
		t.Fatalf("raise to 6 after 5: fence %d", got)
	}
	if got := raise(child, 2, ""); got != 2 {
		t.Fatalf("child fence: %d, want its own 2", got)
	}
	if got, _ := rdb.Get(ctx, session.FenceKey(prefix, parent)).Result(); got != "6" {
		t.Fatalf("the child's raise changed the parent's fence to %q", got)
	}
	// Reset (a lease table created again): only from the value seen.
	if got := raise(parent, 1, "4"); got != 6 {
		t.Fatalf("reset from a value the fence does not hold: fence %d, want 6", got)
	}
	if got := raise(parent, 1, "6"); got != 1 {
		t.Fatalf("reset from 6: fence %d, want 1", got)
	}
	if got := raise(parent, 2, ""); got != 2 {
		t.Fatalf("raise after the reset: fence %d, want 2", got)
	}
}

// A fence that is not a lease counter is an error of the script that names the key, for a raise and for
// a reset alike, and the script leaves the value as it is (it is not read as 0, nor overwritten).
func TestFenceScriptRefusesANonNumericFence(t *testing.T) {
	ctx := context.Background()
	rdb := testenv.Redis(t)
	prefix := testenv.Name(t, "f") + ":"
	dropAtCleanup(t, rdb, prefix)
	fence := redis.NewScript(session.FenceScript)
	key := session.FenceKey(prefix, "shardId-000000000000")
	for _, value := range []string{"garbage", "", "7x", "1e3", " 7"} {
		for _, seen := range []string{"", "7"} {
			if err := rdb.Set(ctx, key, value, 0).Err(); err != nil {
				t.Fatal(err)
			}
			n, err := fence.Run(ctx, rdb, []string{key}, "5", seen).Int64()
			if err == nil || !strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), "not a lease counter") {
				t.Fatalf("fence %q, seen %q: %d, %v; want an error naming %s", value, seen, n, err, key)
			}
			if got, _ := rdb.Get(ctx, key).Result(); got != value {
				t.Fatalf("fence %q, seen %q: the script left %q", value, seen, got)
			}
		}
	}
}

// The positions script reads one field of many hashes, nil where the hash or the field is missing, in
// the order of the keys.
func TestPositionsScript(t *testing.T) {
	ctx := context.Background()
	rdb := testenv.Redis(t)
	prefix := testenv.Name(t, "p") + ":"
	dropAtCleanup(t, rdb, prefix)
	const shard = "shardId-000000000004"
	pf := session.PositionField(shard)
	rdb.HSet(ctx, session.UserKey(prefix, "a"), pf, "17:0")
	rdb.HSet(ctx, session.UserKey(prefix, "b"), session.PositionField("shardId-000000000005"), "9:0")
	rdb.HSet(ctx, session.UserKey(prefix, "d"), pf, "23:4")
	keys := []string{session.UserKey(prefix, "a"), session.UserKey(prefix, "b"), session.UserKey(prefix, "c"), session.UserKey(prefix, "d")}
	got, err := redis.NewScript(session.PositionsScript).Run(ctx, rdb, keys, pf).Slice()
	if err != nil {
		t.Fatal(err)
	}
	want := []any{"17:0", nil, nil, "23:4"}
	if len(got) != len(want) {
		t.Fatalf("%d values for %d keys: %v", len(got), len(keys), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("value %d: %#v, want %#v (all: %v)", i, got[i], want[i], got)
		}
	}
}
