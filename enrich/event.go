package enrich

import (
	"github.com/clickfleet/clickfleet/enrich/geo"
	"github.com/clickfleet/clickfleet/messages"
)

// Event enriches ev, read from shardID at (seq, sub), in place: a click id derived from that position when
// it has none (messages.DerivedClickID, so a replay gets the same id), name when not empty, and country,
// region and city when loc was found. Other statuses leave the location empty; callers that record how an
// address was located write loc.Status themselves. Safe for concurrent use on distinct events.
func Event(ev *messages.Event, shardID, seq string, sub int64, name string, loc geo.Location) {
	if ev.ClickID == "" {
		ev.ClickID = messages.DerivedClickID(shardID, seq, sub)
	}
	if name != "" {
		ev.Name = name
	}
	if loc.Status == geo.StatusFound {
		ev.Country, ev.Region, ev.City = loc.Country, loc.Region, loc.City
	}
}
