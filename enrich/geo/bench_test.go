package geo_test

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/clickfleet/clickfleet/enrich/geo"
	"github.com/clickfleet/clickfleet/ingest/clickgen"
	"github.com/clickfleet/clickfleet/internal/testenv"
)

// benchIPs returns n distinct addresses inside the demo networks (all found in DB-IP).
func benchIPs(n int) []string {
	rng := rand.New(rand.NewPCG(1, 2))
	seen := map[string]bool{}
	var out []string
	for len(out) < n {
		dn := clickgen.DemoNetworks[rng.IntN(len(clickgen.DemoNetworks))]
		p := netip.MustParsePrefix(dn.Prefix)
		b := p.Addr().As4()
		v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		v |= rng.Uint32() & (1<<(32-p.Bits()) - 1)
		s := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}).String()
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// Hot: every address is in the in-process cache (Cached, the actor's synchronous path), all cores.
func BenchmarkCachedHot(b *testing.B) {
	r := newResolver(b, geo.Config{Provider: openDemoMMDB(b)})
	ips := benchIPs(10000)
	for _, ip := range ips {
		if _, err := r.Lookup(context.Background(), ip); err != nil {
			b.Fatal(err)
		}
	}
	var seed atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(seed.Add(7919))
		for pb.Next() {
			if _, ok := r.Cached(ips[i%len(ips)]); !ok {
				b.Error("miss") // not Fatal: this is one of RunParallel's goroutines
				return
			}
			i++
		}
	})
}

// Cold, no Redis: every Lookup misses the in-process cache (it holds 16 entries for 100k addresses) and
// asks the provider (the DB-IP file), then fills the cache. Parallel.
func BenchmarkLookupColdMMDB(b *testing.B) {
	r := newResolver(b, geo.Config{Provider: openDemoMMDB(b), CacheSize: 1})
	ips := benchIPs(100000)
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ip := ips[int(next.Add(1))%len(ips)]
			if _, err := r.Lookup(context.Background(), ip); err != nil {
				b.Error(err) // not Fatal: this is one of RunParallel's goroutines
				return
			}
		}
	})
}

// Cold with Redis: LRU miss → Redis miss → DB-IP → Redis write (MULTI HSET+EXPIRE), the first sight of an
// address in the fleet. Redis round trips dominate; parallel over 64 goroutines.
func BenchmarkLookupColdRedis(b *testing.B) {
	rdb := testenv.Redis(b)
	prefix := testenv.Name(b, "cf") + ":"
	cleanupKeys(b, rdb, prefix)
	r := newResolver(b, geo.Config{Provider: openDemoMMDB(b), Redis: rdb, Prefix: prefix, CacheSize: 1 << 20})
	ips := benchIPs(100000)
	var next atomic.Int64
	b.SetParallelism(32)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ip := ips[int(next.Add(1))%len(ips)]
			if _, err := r.Lookup(context.Background(), ip); err != nil {
				b.Error(err) // not Fatal: this is one of RunParallel's goroutines
				return
			}
		}
	})
}

// Warm in Redis, cold in process: another worker already resolved the address (LRU miss → Redis hit).
func BenchmarkLookupRedisHit(b *testing.B) {
	rdb := testenv.Redis(b)
	prefix := testenv.Name(b, "cf") + ":"
	cleanupKeys(b, rdb, prefix)
	db := openDemoMMDB(b)
	ips := benchIPs(20000)
	warm := newResolver(b, geo.Config{Provider: db, Redis: rdb, Prefix: prefix})
	for _, ip := range ips {
		if _, err := warm.Lookup(context.Background(), ip); err != nil {
			b.Fatal(err)
		}
	}
	r := newResolver(b, geo.Config{Provider: db, Redis: rdb, Prefix: prefix, CacheSize: 1}) // LRU always misses
	var next atomic.Int64
	b.SetParallelism(32)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := r.Lookup(context.Background(), ips[int(next.Add(1))%len(ips)]); err != nil {
				b.Error(err) // not Fatal: this is one of RunParallel's goroutines
				return
			}
		}
	})
}
