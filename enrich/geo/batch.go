package geo

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// batchProviderConcurrency bounds the provider lookups one LookupAll runs at once.
const batchProviderConcurrency = 16

// LookupAll resolves many addresses for a caller that may block (a batch writer such as the archive),
// through the same tiers as Lookup but in bulk: the in-process cache, then one pipelined read of Redis for
// the misses, then the provider for what Redis lacked (at most 16 at a time), then one pipelined write of
// the provider's answers; both caches are filled as by Lookup. The answer maps each address of ips, as
// given, to its Location; an address that could not be located before ctx ended (or the resolver's
// LookupTimeout, whichever is first) is StatusUnavailable and not cached. Safe for concurrent use.
func (r *Resolver) LookupAll(ctx context.Context, ips []string) map[string]Location {
	out := make(map[string]Location, len(ips))
	var miss []string              // normalized keys to look up
	byKey := map[string][]string{} // normalized key → the ips given for it
	for _, ip := range ips {
		if _, done := out[ip]; done {
			continue
		}
		key, loc, ok := r.quick(ip)
		if ok {
			out[ip] = loc
			continue
		}
		if _, seen := byKey[key]; !seen {
			miss = append(miss, key)
		}
		byKey[key] = append(byKey[key], ip)
		out[ip] = Location{Status: StatusUnavailable}
	}
	if len(miss) == 0 {
		return out
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.LookupTimeout)
	defer cancel()
	set := func(key string, loc Location) {
		for _, ip := range byKey[key] {
			out[ip] = loc
		}
	}
	now := r.cfg.Now()
	if r.cfg.Redis != nil {
		rest := miss[:0:0]
		for i, h := range r.readRedisAll(ctx, miss) {
			loc, ttl, ok := r.fromRedis(h)
			if !ok {
				rest = append(rest, miss[i])
				continue
			}
			r.m.redis.Inc()
			r.cache.put(miss[i], loc, now.Add(ttl))
			set(miss[i], loc)
		}
		miss = rest
	}
	type answer struct {
		key string
		loc Location
		ttl time.Duration
	}
	answers := make([]answer, len(miss))
	var wg sync.WaitGroup
	sem := make(chan struct{}, batchProviderConcurrency)
	for i, key := range miss {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			a, _ := ParsePublic(key)
			loc, err := r.cfg.Provider.Lookup(ctx, a)
			if err == nil && loc.Status != StatusFound && loc.Status != StatusNotFound {
				err = ErrProvider
			}
			if err != nil {
				r.m.unavailable.Inc()
				r.log.Debug("geo lookup failed", zap.String("ip", key), zap.Error(err))
				answers[i] = answer{key: key, loc: Location{Status: StatusUnavailable}}
				return
			}
			r.m.provider.Inc()
			ttl := r.cfg.TTL
			if loc.Status == StatusNotFound {
				loc, ttl = Location{Status: StatusNotFound}, r.cfg.NotFoundTTL
			}
			answers[i] = answer{key: key, loc: loc, ttl: ttl}
		}()
	}
	wg.Wait()
	var fresh []answer
	for _, a := range answers {
		set(a.key, a.loc)
		if a.loc.Status == StatusUnavailable {
			continue
		}
		r.cache.put(a.key, a.loc, now.Add(a.ttl))
		fresh = append(fresh, a)
	}
	if r.cfg.Redis != nil && len(fresh) > 0 {
		wctx, wcancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.RedisTimeout)
		defer wcancel()
		_, err := r.cfg.Redis.Pipelined(wctx, func(p redis.Pipeliner) error {
			for _, a := range fresh {
				rkey := r.cfg.Prefix + "geo:" + a.key
				p.Del(wctx, rkey)
				if a.loc.Status == StatusNotFound {
					p.HSet(wctx, rkey, fieldNotFound, "1")
				} else {
					p.HSet(wctx, rkey, appendRedisFields(nil, a.loc)...)
				}
				p.Expire(wctx, rkey, a.ttl)
			}
			return nil
		})
		if err != nil {
			r.m.redisErrors.WithLabelValues("write").Inc()
			r.log.Warn("geo cache write failed", zap.Int("keys", len(fresh)), zap.Error(err))
		}
	}
	return out
}

// readRedisAll reads the cached answers of keys in one pipeline; an outage yields no answers (counted and
// logged), never an error.
func (r *Resolver) readRedisAll(ctx context.Context, keys []string) []map[string]string {
	out := make([]map[string]string, len(keys))
	rctx, cancel := context.WithTimeout(ctx, r.cfg.RedisTimeout)
	defer cancel()
	cmds := make([]*redis.MapStringStringCmd, len(keys))
	_, err := r.cfg.Redis.Pipelined(rctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.HGetAll(rctx, r.cfg.Prefix+"geo:"+k)
		}
		return nil
	})
	if err != nil {
		r.m.redisErrors.WithLabelValues("read").Inc()
		r.log.Warn("geo cache read failed", zap.Int("keys", len(keys)), zap.Error(err))
		return out
	}
	for i, c := range cmds {
		out[i], _ = c.Result()
	}
	return out
}
