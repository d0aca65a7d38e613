package position_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/clickfleet/clickfleet/internal/testenv"
	"github.com/clickfleet/clickfleet/lease/position"
)

func TestCompare(t *testing.T) {
	at := position.At
	cases := []struct {
		name string
		a, b position.Position
		want int
	}{
		{"equal", at("495", 0), at("495", 0), 0},
		{"sequence", at("495", 9), at("496", 0), -1},
		{"sub-sequence", at("495", 1), at("495", 2), -1},
		{"longer is larger", at("99", 5), at("100", 0), -1},
		{"leading zeros ignored", at("000100", 3), at("100", 3), 0},
		{"leading zeros and length", at("0099", 0), at("100", 0), -1},
		{"56 digits", at("49600000000000000000000000000000000000000000000000000001", 0), at("49600000000000000000000000000000000000000000000000000002", 0), -1},
		{"zero before a record", position.Position{}, at("1", 0), -1},
		{"trim horizon before a record", position.TrimHorizon, at("0", 0), -1},
		{"latest before a record", position.Latest, at("1", 0), -1},
		{"at timestamp before a record", position.AtTimestamp, at("1", 0), -1},
		{"starting sentinels equal", position.TrimHorizon, position.Latest, 0},
		{"zero and trim horizon", position.Position{}, position.TrimHorizon, 0},
		{"shard end after a record", position.ShardEnd, at("999999999", 9), 1},
		{"shard end after trim horizon", position.ShardEnd, position.TrimHorizon, 1},
		{"shard end equals itself", position.ShardEnd, position.ShardEnd, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.a.Compare(c.b); got != c.want {
				t.Fatalf("%v.Compare(%v) = %d, want %d", c.a, c.b, got, c.want)
			}
			if got := c.b.Compare(c.a); got != -c.want {
				t.Fatalf("%v.Compare(%v) = %d, want %d", c.b, c.a, got, -c.want)
			}
		})
	}
}

func TestKinds(t *testing.T) {
	for _, c := range []struct {
		p                           position.Position
		zero, sentinel, end, record bool
		text                        string
	}{
		{position.Position{}, true, false, false, false, ""},
		{position.TrimHorizon, false, true, false, false, "TRIM_HORIZON"},
		{position.ShardEnd, false, true, true, false, "SHARD_END"},
		{position.At("42", 3), false, false, false, true, "42/3"},
		{position.At("4x2", 0), false, false, false, false, "4x2/0"},
		{position.At("42", -1), false, false, false, false, "42/-1"},
	} {
		if c.p.IsZero() != c.zero || c.p.IsSentinel() != c.sentinel || c.p.IsShardEnd() != c.end || c.p.IsSequence() != c.record || c.p.String() != c.text {
			t.Errorf("%#v: zero %v sentinel %v end %v record %v %q", c.p, c.p.IsZero(), c.p.IsSentinel(), c.p.IsShardEnd(), c.p.IsSequence(), c.p.String())
		}
	}
}

func TestEncodeDecode(t *testing.T) {
	for _, p := range []position.Position{{}, position.At("49600000000000000000000000000000000000000000000000000001", 0), position.At("7", 12)} {
		got, err := position.Decode(p.Encode())
		if err != nil || got != p {
			t.Fatalf("Decode(Encode(%v)) = %v, %v", p, got, err)
		}
	}
	for _, bad := range []string{"42", "42:", ":1", "4x:1", "42:-1", "42:1:2", "SHARD_END:0", " 42:1"} {
		if p, err := position.Decode(bad); err == nil {
			t.Errorf("Decode(%q) = %v, want an error", bad, p)
		}
	}
}

// The Lua guard orders record positions as Compare does, on random pairs with leading zeros, different
// lengths and equal sequences, in the real Redis.
func TestLuaBeyondAgreesWithCompare(t *testing.T) {
	rdb := testenv.Redis(t)
	script := redis.NewScript(position.LuaBeyond + `
local out = {}
for i = 1, #ARGV, 3 do
  out[#out + 1] = beyond(ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])) and 1 or 0
end
return out
`)
	r := rand.New(rand.NewPCG(1, 2))
	digits := func() string {
		var b strings.Builder
		b.WriteString(strings.Repeat("0", r.IntN(3)))
		n := 1 + r.IntN(4)
		for range n {
			b.WriteByte(byte('0' + r.IntN(3)))
		}
		return b.String()
	}
	var args []any
	type pair struct{ stored, rec position.Position }
	var pairs []pair
	for range 500 {
		stored, rec := position.At(digits(), int64(r.IntN(3))), position.At(digits(), int64(r.IntN(3)))
		if r.IntN(10) == 0 {
			stored = position.Position{}
		}
		pairs = append(pairs, pair{stored, rec})
		args = append(args, stored.Encode(), rec.SequenceNumber, rec.SubSequence)
	}
	got, err := script.Run(context.Background(), rdb, []string{"unused"}, args...).Int64Slice()
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range pairs {
		want := int64(0)
		if p.rec.Compare(p.stored) > 0 {
			want = 1
		}
		if got[i] != want {
			t.Errorf("beyond(%q, %v) = %d in Lua, Compare says %d", p.stored.Encode(), p.rec, got[i], want)
		}
	}
}

func ExamplePosition_Compare() {
	a, b := position.At("0099", 7), position.At("100", 0)
	fmt.Println(a.Compare(b), b.Compare(a), position.ShardEnd.Compare(b), position.TrimHorizon.Compare(a))
	// Output: -1 1 1 -1
}
