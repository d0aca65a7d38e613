package session

import (
	"fmt"
	"strconv"

	"github.com/clickfleet/clickfleet/lease/position"
	"github.com/clickfleet/clickfleet/messages"
)

// Field names of the user hash cf:user:<id> (docs/contracts.md, "Redis"). This package owns all but FieldName and
// FieldPricePerClick, which the names sync (package enrich/names) writes and this package only reads.
const (
	FieldLastAccess  = "last_access_ms"
	FieldSessionID   = "session_id"
	FieldDevice      = "session_device"
	FieldStartMs     = "session_start_ms"
	FieldLastEventMs = "session_last_ms"
	FieldCount       = "session_count"
	FieldPrevMs      = "prev_event_ms"
	// FieldRow is what the sessions table holds for the open session ([Row.Encode]).
	FieldRow          = "session_row"
	FieldShard        = "shard" // the shard whose record the state reflects (its position: PositionField)
	PositionFieldStem = "pos:"  // + shard id: the last applied position on that shard ("seq:sub")
	// FieldRecentClicks is the user's window of recently applied click ids ([RecentClicks.Encode]).
	FieldRecentClicks = "recent_clicks"
	// The user's location: that of the latest applied event whose address resolved (written with the state).
	FieldCountry = "country"
	FieldRegion  = "region"
	FieldCity    = "city"
	// FieldName is the user's full name and FieldPricePerClick their price per click, both written by
	// the names sync from PostgreSQL; read here, never written.
	FieldName          = "name"
	FieldPricePerClick = "price_per_click"
)

// PositionsUsers is how many users a writer puts in one [PositionsScript] call.
const PositionsUsers = 128

// PositionsScript reads many users' positions on one shard in one call (a flush's guard probe): KEYS the
// users' hashes, ARGV[1] the field (PositionField(shard)); it returns one value per key, nil where the
// field is missing.
const PositionsScript = `
local out = {}
for k = 1, #KEYS do
  out[k] = redis.call('HGET', KEYS[k], ARGV[1])
end
return out
`

// FenceKey returns the string holding the highest holding epoch of shardID's owners (the lease's
// leaseCounter when the holding period started): prefix + "fence:" + shardID. A new owner raises it
// ([FenceScript]) before it reads any user state; an owner writes its users' state only in a
// transaction that watches the fence and finds it not above its own epoch (so no write of an earlier
// owner lands once a newer one started).
// Each shard has its own: the children of a split or merge start their own fences, their parents'
// fences stay as they were.
func FenceKey(prefix, shardID string) string { return prefix + "fence:" + shardID }

// FenceScript raises a shard's fence to the caller's epoch. KEYS[1] the fence ([FenceKey]), ARGV[1] the
// epoch, ARGV[2] empty, or the fence value the caller saw (then the fence is set to the epoch only if it
// still holds that value, even when that lowers it: a fence left by an earlier lease table whose
// counters started again). With ARGV[2] empty it sets the fence to the epoch unless the fence is higher.
// It returns the fence after the call; a fence that is not an integer (not a lease counter) is an error
// naming the key, and the fence is left as it is.
const FenceScript = `
local cur = redis.call('GET', KEYS[1])
if cur and not string.match(cur, '^[+-]?%d+$') then
  return redis.error_reply(KEYS[1] .. ' holds a value that is not a lease counter')
end
if ARGV[2] ~= '' then
  if cur == ARGV[2] then redis.call('SET', KEYS[1], ARGV[1]) return tonumber(ARGV[1]) end
  return tonumber(cur or '-1')
end
if cur == false or tonumber(cur) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1])
  return tonumber(ARGV[1])
end
return tonumber(cur)
`

// LaggingRowsKey returns the Redis set of the users whose session row lags their state, as written
// by the owners of shardID: prefix + "rows:" + shardID. A new owner of the shard reads it at the start
// of its holding period and writes those rows at their next trigger, so no row stays behind after a
// crash.
func LaggingRowsKey(prefix, shardID string) string { return prefix + "rows:" + shardID }

// DefaultPrefix is the default start of every Redis key of the pipeline (a setting of each component).
const DefaultPrefix = "cf:"

// UserKey returns the Redis hash of a user: prefix + "user:" + userID (prefix is configurable, "cf:" by
// default). The actors own its state and location fields, the names sync FieldName and
// FieldPricePerClick.
func UserKey(prefix, userID string) string { return prefix + "user:" + userID }

// PositionField returns the hash field holding the last applied position on shardID.
func PositionField(shardID string) string { return PositionFieldStem + shardID }

// AppendFields appends u's state as alternating field names and values for HSET, without the position
// field (the writer sets pos:<shard> itself) and without the name (the names sync's), and marks what it
// appended as stored: the caller writes it, or discards u (a failed flush ends the holding period) or
// calls ForgetStored (effects dropped as stale). Only what the hash may not hold yet is appended: the
// last access and the open session's moving fields (last event, count, previous event) always; the
// session's identity (id, device, start) when the session started since; the row state, the location
// (country, region and city, the last two possibly empty; once known, all three together), the window
// of recent click ids (once it holds one) and shard (shardID, the shard whose record the state
// reflects) when they changed. Names are strings; values are strings or int64s, which Redis stores as
// their decimal text (go-redis writes an int64 argument so, with no string made for it).
func (u *User) AppendFields(dst []any, shardID string) []any {
	dst = append(dst, FieldLastAccess, u.LastAccessMs)
	if u.stored&groupShard == 0 {
		dst = append(dst, FieldShard, shardID)
	}
	if u.Country != "" && u.stored&groupLocation == 0 {
		dst = append(dst, FieldCountry, u.Country, FieldRegion, u.Region, FieldCity, u.City)
	}
	if u.Recent.Len() > 0 && u.stored&groupRecent == 0 {
		dst = append(dst, FieldRecentClicks, u.Recent.Encode())
	}
	u.stored |= groupShard | groupLocation | groupRecent
	if !u.Started() {
		return dst
	}
	c := &u.Current
	if u.stored&groupSession == 0 {
		dst = append(dst, FieldSessionID, c.SessionID, FieldDevice, c.DeviceType, FieldStartMs, c.StartMs)
	}
	dst = append(dst, FieldLastEventMs, c.LastEventMs, FieldCount, c.EventCount, FieldPrevMs, u.PrevMs)
	if u.stored&groupRow == 0 {
		dst = append(dst, FieldRow, u.Row.Encode())
	}
	u.stored |= groupSession | groupRow
	return dst
}

// FromFields rebuilds user id's state on shardID from its hash (as HGETALL returns it; nil or empty for a
// new user). A malformed field is an error naming it.
func FromFields(id, shardID string, h map[string]string) (User, error) {
	u := User{ID: id, Name: h[FieldName], Country: h[FieldCountry], Region: h[FieldRegion], City: h[FieldCity], stored: allGroups}
	if h[FieldShard] != shardID {
		u.stored &^= groupShard
	}
	num := func(f string) (int64, error) {
		v, ok := h[f]
		if !ok {
			return 0, nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("user %s: field %s: %w", id, f, err)
		}
		return n, nil
	}
	var err error
	if u.LastAccessMs, err = num(FieldLastAccess); err != nil {
		return u, err
	}
	if u.Applied, err = position.Decode(h[PositionField(shardID)]); err != nil {
		return u, fmt.Errorf("user %s: field %s: %w", id, PositionField(shardID), err)
	}
	if u.Recent, err = ParseRecentClicks(h[FieldRecentClicks]); err != nil {
		return u, fmt.Errorf("user %s: field %s: %w", id, FieldRecentClicks, err)
	}
	sid := h[FieldSessionID]
	if sid == "" {
		return u, nil
	}
	var start, last, count, prev int64
	for _, p := range []struct {
		f string
		v *int64
	}{{FieldStartMs, &start}, {FieldLastEventMs, &last}, {FieldCount, &count}, {FieldPrevMs, &prev}} {
		if *p.v, err = num(p.f); err != nil {
			return u, err
		}
	}
	s := messages.NewSession(id, h[FieldDevice], start)
	if s.SessionID != sid {
		return u, fmt.Errorf("user %s: field %s is %q but %s and %s give %q", id, FieldSessionID, sid, FieldDevice, FieldStartMs, s.SessionID)
	}
	s.LastEventMs, s.EventCount = last, count
	u.Current, u.PrevMs = s, prev
	if u.Row, err = ParseRow(h[FieldRow]); err != nil {
		return u, fmt.Errorf("user %s: field %s: %w", id, FieldRow, err)
	}
	return u, nil
}
