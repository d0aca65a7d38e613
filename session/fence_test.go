package session_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/clickfleet/clickfleet/internal/testenv"
	"github.com/clickfleet/clickfleet/session"
)

// The state script's fence against a real Redis: once a shard's fence is raised to an epoch, writes of
// lower epochs are refused with session.Fenced and change nothing (hash, lagging-rows set), equal and
// higher epochs write; each shard's fence is its own (a split's children do not inherit the parent's);
// the fence only rises, except through the reset form of FenceScript, which sets it only if it still
// holds the value the caller saw.
func TestStateScriptFence(t *testing.T) {
	ctx := context.Background()
	rdb := testenv.Redis(t)
	prefix := testenv.Name(t, "f") + ":"
	t.Cleanup(func() {
		keys, _ := rdb.Keys(ctx, prefix+"*").Result()
		if len(keys) > 0 {
			rdb.Del(ctx, keys...)
		}
	})
	state := redis.NewScript(session.StateScript)
	fence := redis.NewScript(session.FenceScript)
	const parent, child = "shardId-000000000000", "shardId-000000000001"
	user := session.UserKey(prefix, "u1")
	raise := func(shard string, epoch int64, seen string) int64 {
		t.Helper()
		n, err := fence.Run(ctx, rdb, []string{session.FenceKey(prefix, shard)}, strconv.FormatInt(epoch, 10), seen).Int64()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	seq := 0
	write := func(shard string, epoch int64) int64 {
		t.Helper()
		seq++
		n, err := state.Run(ctx, rdb, []string{user, session.LaggingRowsKey(prefix, shard), session.FenceKey(prefix, shard)},
			shard, strconv.Itoa(1000+seq), "0", "s", "u1", "1", strconv.FormatInt(epoch, 10), session.FieldCount, strconv.Itoa(seq)).Int64()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	snapshot := func() (map[string]string, []string) {
		t.Helper()
		h, err := rdb.HGetAll(ctx, user).Result()
		if err != nil {
			t.Fatal(err)
		}
		s, err := rdb.SMembers(ctx, session.LaggingRowsKey(prefix, parent)).Result()
		if err != nil {
			t.Fatal(err)
		}
		return h, s
	}

	if got := write(parent, 0); got != 1 {
		t.Fatalf("write without a fence: %d, want 1", got)
	}
	if got := raise(parent, 5, ""); got != 5 {
		t.Fatalf("raise to 5: fence %d", got)
	}
	if got := raise(parent, 3, ""); got != 5 {
		t.Fatalf("raise to 3 after 5: fence %d, want it to stay 5", got)
	}
	h0, s0 := snapshot()
	rdb.SRem(ctx, session.LaggingRowsKey(prefix, parent), "u1")
	for _, epoch := range []int64{0, 4} {
		if got := write(parent, epoch); got != session.Fenced {
			t.Fatalf("write of epoch %d under fence 5: %d, want %d", epoch, got, session.Fenced)
		}
	}
	if h, s := snapshot(); h[session.FieldCount] != h0[session.FieldCount] || h[session.PositionField(parent)] != h0[session.PositionField(parent)] || len(s) != 0 {
		t.Fatalf("a refused write changed the state: %v %v (before %v %v)", h, s, h0, s0)
	}
	if got := write(parent, 5); got != 1 {
		t.Fatalf("write of the fence's own epoch: %d, want 1", got)
	}
	if got := write(parent, 6); got != 1 {
		t.Fatalf("write of a newer epoch: %d, want 1", got)
	}
	if h, _ := snapshot(); h[session.FieldCount] != strconv.Itoa(seq) {
		t.Fatalf("count %q after the accepted writes, want %d", h[session.FieldCount], seq)
	}

	// The child shard's fence is its own: a low epoch writes there, and raising it leaves the parent's.
	if got := write(child, 1); got != 1 {
		t.Fatalf("child shard write of epoch 1 while the parent's fence is 5: %d, want 1", got)
	}
	if got := raise(child, 2, ""); got != 2 {
		t.Fatalf("child fence: %d", got)
	}
	if got := write(child, 1); got != session.Fenced {
		t.Fatalf("child write of epoch 1 under its fence 2: %d", got)
	}
	if got := write(parent, 5); got != 1 {
		t.Fatalf("parent write of epoch 5 after the child's fence: %d", got)
	}

	// Reset (a lease table created again): only from the value seen.
	if got := raise(parent, 1, "4"); got != 5 {
		t.Fatalf("reset from a value the fence does not hold: fence %d, want 5", got)
	}
	if got := raise(parent, 1, "5"); got != 1 {
		t.Fatalf("reset from 5: fence %d, want 1", got)
	}
	if got := write(parent, 1); got != 1 {
		t.Fatalf("write of epoch 1 after the reset: %d", got)
	}
	if got := write(parent, 0); got != session.Fenced {
		t.Fatalf("write of epoch 0 after the reset to 1: %d", got)
	}
}
