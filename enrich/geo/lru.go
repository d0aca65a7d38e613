package geo

import (
	"container/list"
	"hash/maphash"
	"sync"
	"time"
)

// lru is a sharded, size-bounded LRU of Locations with per-entry expiry. Safe for concurrent use; each
// operation holds one shard's mutex for a map access and a list move, nothing more.
type lru struct {
	seed   maphash.Seed
	shards []lruShard
}

type lruShard struct {
	mu    sync.Mutex
	max   int
	items map[string]*list.Element
	order list.List // front: most recently used
}

type lruEntry struct {
	key     string
	loc     Location
	expires time.Time
}

const lruShards = 16

func newLRU(size int) *lru {
	c := &lru{seed: maphash.MakeSeed(), shards: make([]lruShard, lruShards)}
	per := max(1, (size+lruShards-1)/lruShards)
	for i := range c.shards {
		c.shards[i].max = per
		c.shards[i].items = make(map[string]*list.Element, min(per, 1024))
	}
	return c
}

func (c *lru) shard(key string) *lruShard {
	return &c.shards[maphash.String(c.seed, key)%lruShards]
}

// get returns the live entry for key, dropping it when it expired by now.
func (c *lru) get(key string, now time.Time) (Location, bool) {
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	el, ok := s.items[key]
	if !ok {
		return Location{}, false
	}
	e := el.Value.(*lruEntry)
	if !now.Before(e.expires) {
		s.order.Remove(el)
		delete(s.items, key)
		return Location{}, false
	}
	s.order.MoveToFront(el)
	return e.loc, true
}

// getBytes is get for a key held in a byte slice; a hit allocates nothing.
func (c *lru) getBytes(key []byte, now time.Time) (Location, bool) {
	s := &c.shards[maphash.Bytes(c.seed, key)%lruShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	el, ok := s.items[string(key)]
	if !ok {
		return Location{}, false
	}
	e := el.Value.(*lruEntry)
	if !now.Before(e.expires) {
		s.order.Remove(el)
		delete(s.items, e.key)
		return Location{}, false
	}
	s.order.MoveToFront(el)
	return e.loc, true
}

func (c *lru) put(key string, loc Location, expires time.Time) {
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.items[key]; ok {
		e := el.Value.(*lruEntry)
		e.loc, e.expires = loc, expires
		s.order.MoveToFront(el)
		return
	}
	s.items[key] = s.order.PushFront(&lruEntry{key: key, loc: loc, expires: expires})
	for len(s.items) > s.max {
		el := s.order.Back()
		s.order.Remove(el)
		delete(s.items, el.Value.(*lruEntry).key)
	}
}

func (c *lru) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.items)
		s.mu.Unlock()
	}
	return n
}
