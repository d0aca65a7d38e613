package archive

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/actors/session"
	"github.com/clickfleet/clickfleet/consumer"
	"github.com/clickfleet/clickfleet/enrich"
	"github.com/clickfleet/clickfleet/enrich/geo"
	"github.com/clickfleet/clickfleet/lake"
	"github.com/clickfleet/clickfleet/messages"
)

// objectSet is the encoded objects of one run of a shard's records.
type objectSet struct {
	raw, events, errors []byte // events and errors nil when there is no such record
	nEvents, nErrors    int
	inputBytes          int
}

// errorLine is one line of an errors object: the error stream's record plus the position's sub-sequence
// and the arrival time (Firehose's processing-failed output carries its own metadata likewise).
type errorLine struct {
	messages.ErrorRecord
	SubSequence int64  `json:"sub_sequence"`
	ArrivalTime string `json:"arrival_time"`
}

// decoded is one valid record of a run, with what enrichment needs.
type decoded struct {
	rec *consumer.Record
	ev  *messages.Event
}

// encode encodes recs (one shard, in order) into their raw, events and errors objects, enriching the
// valid events. It fails only when the context ends.
func (p *processor) encode(ctx context.Context, recs []consumer.Record) (objectSet, error) {
	var set objectSet
	var raw, errs bytes.Buffer
	rawW, closeRaw := p.compressor(&raw)
	errW, closeErr := p.compressor(&errs)
	valid := make([]decoded, 0, len(recs))
	for i := range recs {
		r := &recs[i]
		set.inputBytes += len(r.Data)
		writeLine(rawW, r.Data)
		ev, err := messages.Decode(r.Data)
		if err != nil {
			line := errorLine{ErrorRecord: messages.NewErrorRecord(p.cfg.Stream, r.ShardID, r.SequenceNumber, r.Data, err),
				SubSequence: r.SubSequence, ArrivalTime: r.ArrivedAt.UTC().Format(time.RFC3339Nano)}
			b, jerr := json.Marshal(line)
			if jerr != nil { // cannot happen: plain strings and bytes
				return set, jerr
			}
			errW.Write(append(b, '\n'))
			set.nErrors++
			continue
		}
		valid = append(valid, decoded{rec: r, ev: ev})
	}
	if err := closeRaw(); err != nil {
		return set, err
	}
	set.raw = raw.Bytes()
	if set.nErrors > 0 {
		if err := closeErr(); err != nil {
			return set, err
		}
		set.errors = errs.Bytes()
	}
	if len(valid) == 0 {
		return set, nil
	}
	nameOf := p.names(ctx, valid)
	locs := p.locate(ctx, valid)
	var pq bytes.Buffer
	w := parquet.NewWriter(&pq, lake.Events.ParquetSchema(), parquet.Compression(lake.Codec),
		parquet.MaxRowsPerRowGroup(int64(len(valid))), parquet.CreatedBy("clickfleet archive", "", ""))
	rows := make([]parquet.Row, 0, len(valid))
	for _, d := range valid {
		loc, located := locs[d.ev.UserIP], p.cfg.Geo != nil && d.ev.UserIP != ""
		enrich.Event(d.ev, d.rec.ShardID, d.rec.SequenceNumber, d.rec.SubSequence, nameOf[d.ev.UserID], loc)
		rows = append(rows, eventRow(d.rec, d.ev, loc, located).Parquet())
	}
	if _, err := w.WriteRows(rows); err != nil {
		return set, err
	}
	if err := w.Close(); err != nil {
		return set, err
	}
	set.events, set.nEvents = pq.Bytes(), len(valid)
	return set, nil
}

// writeLine writes one record as one line: its bytes as they arrived, unless they hold line breaks (a
// pretty-printed JSON object is compacted; other data gets its line breaks replaced by spaces).
func writeLine(w interface{ Write([]byte) (int, error) }, data []byte) {
	if bytes.IndexByte(data, '\n') < 0 && bytes.IndexByte(data, '\r') < 0 {
		w.Write(data)
		w.Write([]byte{'\n'})
		return
	}
	var c bytes.Buffer
	if json.Compact(&c, data) == nil {
		c.WriteByte('\n')
		w.Write(c.Bytes())
		return
	}
	b := bytes.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, data)
	w.Write(append(b, '\n'))
}

// compressor returns the writer of a raw or errors object and the function that finishes it.
func (p *processor) compressor(buf *bytes.Buffer) (interface{ Write([]byte) (int, error) }, func() error) {
	if p.cfg.RawCompression == None {
		return buf, func() error { return nil }
	}
	zw, _ := gzip.NewWriterLevel(buf, gzip.BestSpeed) // a valid level never fails
	return zw, zw.Close
}

// names reads the names of the users of valid records from their Redis hashes in one pipeline. A
// failure leaves names out (counted and logged): the lake keeps the event, like an offer without a name.
func (p *processor) names(ctx context.Context, valid []decoded) map[string]string {
	out := map[string]string{}
	if p.cfg.Names == nil {
		return out
	}
	ids := make([]string, 0, 64)
	seen := map[string]bool{}
	for _, d := range valid {
		if !seen[d.ev.UserID] {
			seen[d.ev.UserID] = true
			ids = append(ids, d.ev.UserID)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.NamesTimeout)
	defer cancel()
	cmds := make([]*redis.StringCmd, len(ids))
	_, err := p.cfg.Names.Pipelined(ctx, func(pl redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = pl.HGet(ctx, session.UserKey(p.cfg.Prefix, id), session.FieldName)
		}
		return nil
	})
	if err != nil && err != redis.Nil {
		failed := false
		for _, c := range cmds {
			if c.Err() != nil && c.Err() != redis.Nil {
				failed = true
			}
		}
		if failed {
			p.a.m.enrichFails.WithLabelValues("names").Inc()
			p.log.Warn("names lookup failed; the object's events carry no names", zap.Error(err))
		}
	}
	for i, c := range cmds {
		if v, err := c.Result(); err == nil && v != "" {
			out[ids[i]] = v
		}
	}
	return out
}

// locate resolves the distinct addresses of valid records in one batch (the resolver's caches, then one
// Redis pipeline, then the provider); an address not located in time is StatusUnavailable.
func (p *processor) locate(ctx context.Context, valid []decoded) map[string]geo.Location {
	if p.cfg.Geo == nil {
		return map[string]geo.Location{}
	}
	ips := make([]string, 0, len(valid))
	seen := map[string]bool{}
	for _, d := range valid {
		if ip := d.ev.UserIP; ip != "" && !seen[ip] {
			seen[ip] = true
			ips = append(ips, ip)
		}
	}
	return p.cfg.Geo.LookupAll(ctx, ips)
}

// eventRow builds the Parquet row of an enriched event.
func eventRow(r *consumer.Record, ev *messages.Event, loc geo.Location, located bool) lake.Row {
	row := lake.Events.NewRow()
	row.SetMillis(lake.ColEventTime, ev.EventTimeMs)
	row.SetString(lake.ColUserID, ev.UserID)
	row.SetString(lake.ColClickID, ev.ClickID)
	row.SetString(lake.ColEventName, ev.EventName)
	row.SetString(lake.ColEventType, ev.EventType)
	row.SetString(lake.ColDeviceType, ev.DeviceType)
	row.SetString(lake.ColPixelID, ev.PixelID)
	row.SetString(lake.ColUserIP, ev.UserIP)
	if ms, ok := messages.ParseTimeMs(ev.InsertionTimestamp); ok { // every form Decode accepts, RFC 3339 too
		row.SetMillis(lake.ColInsertionTime, ms)
	}
	if ad := ev.AdditionalData; ad != nil {
		if ad.Has(messages.HasTimeOnData) {
			row.SetDouble(lake.ColTimeOnData, ad.TimeOnData)
		}
		if ad.Has(messages.HasPercentViewed) {
			row.SetDouble(lake.ColPercentViewed, ad.PercentViewed)
		}
		if ad.Has(messages.HasProductID) {
			row.SetInt64(lake.ColProductID, ad.ProductID)
		}
		if ad.Has(messages.HasPrice) {
			row.SetDouble(lake.ColPrice, ad.Price)
		}
	}
	row.SetString(lake.ColName, ev.Name)
	row.SetString(lake.ColCountry, ev.Country)
	row.SetString(lake.ColRegion, ev.Region)
	row.SetString(lake.ColCity, ev.City)
	if located {
		row.SetString(lake.ColGeoStatus, loc.Status.String())
		if loc.Status == geo.StatusFound && loc.HasCoordinates {
			row.SetDouble(lake.ColLatitude, loc.Latitude)
			row.SetDouble(lake.ColLongitude, loc.Longitude)
		}
	}
	row.SetString(lake.ColShardID, r.ShardID)
	row.SetString(lake.ColSequenceNumber, r.SequenceNumber)
	row.SetInt64(lake.ColSubSequence, r.SubSequence)
	row.SetTime(lake.ColArrivalTime, r.ArrivedAt)
	return row
}
