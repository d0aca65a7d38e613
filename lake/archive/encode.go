package archive

import (
	"bytes"
	"context"
	"encoding/json"
	"time"

	"github.com/klauspost/compress/gzip"
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

// encoder is the memory an encode works in, kept between object sets (Archiver.encoders): the decoded
// events, the Parquet rows and writer, and the gzip writer. The objects it returns never share it.
type encoder struct {
	events []eventBox // events[i] is recs[i] decoded
	valid  []decoded  // the records that decode, pointing into events
	rows   *lake.Batch
	pq     *parquet.Writer
	gz     *gzip.Writer
	errs   bytes.Buffer // the errors object's lines before compression
}

type eventBox struct {
	ev messages.Event
	ad messages.AdditionalData
}

// getEncoder takes an idle encoder, or makes one.
func (a *Archiver) getEncoder() *encoder {
	select {
	case e := <-a.encoders:
		return e
	default:
	}
	gz, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed) // a valid level never fails
	return &encoder{rows: lake.Events.NewBatch(), gz: gz,
		pq: parquet.NewWriter(nil, lake.Events.ParquetSchema(), parquet.Compression(lake.Codec), parquet.CreatedBy("clickfleet archive", "", ""), parquet.DataPageStatistics(false))}
}

// putEncoder empties e and keeps it for the next encode, unless enough encoders are idle.
func (a *Archiver) putEncoder(e *encoder) {
	clear(e.events) // drop the strings of the events
	clear(e.valid)  // and the records
	e.valid = e.valid[:0]
	e.rows.Reset()
	e.pq.Reset(nil)
	e.gz.Reset(nil)
	e.errs.Reset()
	select {
	case a.encoders <- e:
	default:
	}
}

// encode encodes recs (one shard, in order) into their raw, events and errors objects, enriching the
// valid events. It fails only when the context ends.
func (p *processor) encode(ctx context.Context, recs []consumer.Record) (objectSet, error) {
	e := p.a.getEncoder()
	defer p.a.putEncoder(e)
	set, err := p.split(e, recs)
	if err != nil || len(e.valid) == 0 {
		return set, err
	}
	nameOf := p.names(ctx, e.valid)
	locs := p.locate(ctx, e.valid)
	for _, d := range e.valid {
		loc, located := locs[d.ev.UserIP], p.cfg.Geo != nil && d.ev.UserIP != ""
		enrich.Event(d.ev, d.rec.ShardID, d.rec.SequenceNumber, d.rec.SubSequence, nameOf[d.ev.UserID], loc)
		addEventRow(e.rows, d.rec, d.ev, loc, located)
	}
	pq := bytes.NewBuffer(make([]byte, 0, 64*e.rows.Len()+4096)) // about the size of a row, one growth at most
	e.pq.Reset(pq)
	if err := e.rows.WriteTo(e.pq); err != nil {
		return set, err
	}
	if err := e.pq.Close(); err != nil {
		return set, err
	}
	set.events, set.nEvents = pq.Bytes(), len(e.valid)
	return set, nil
}

// split writes the raw object of recs and the errors object of those that fail decoding, and keeps the
// others in e.valid.
func (p *processor) split(e *encoder, recs []consumer.Record) (objectSet, error) {
	var set objectSet
	for i := range recs {
		set.inputBytes += len(recs[i].Data)
	}
	raw := bytes.NewBuffer(make([]byte, 0, set.inputBytes/3+4096)) // gzip leaves about a quarter
	rawW, closeRaw := p.compressor(e, raw)
	if cap(e.events) < len(recs) {
		e.events = make([]eventBox, len(recs))
	}
	for i := range recs {
		r, box := &recs[i], &e.events[i]
		writeLine(rawW, r.Data)
		if err := messages.DecodeReusing(r.Data, &box.ev, &box.ad); err != nil {
			line := errorLine{ErrorRecord: messages.NewErrorRecord(p.cfg.Stream, r.ShardID, r.SequenceNumber, r.Data, err),
				SubSequence: r.SubSequence, ArrivalTime: r.ArrivedAt.UTC().Format(time.RFC3339Nano)}
			b, jerr := json.Marshal(line)
			if jerr != nil { // cannot happen: plain strings and bytes
				return set, jerr
			}
			e.errs.Write(append(b, '\n'))
			set.nErrors++
			continue
		}
		e.valid = append(e.valid, decoded{rec: r, ev: &box.ev})
	}
	if err := closeRaw(); err != nil {
		return set, err
	}
	set.raw = raw.Bytes()
	if set.nErrors > 0 {
		errs := bytes.NewBuffer(make([]byte, 0, e.errs.Len()/2+512))
		errW, closeErr := p.compressor(e, errs)
		errW.Write(e.errs.Bytes())
		if err := closeErr(); err != nil {
			return set, err
		}
		set.errors = errs.Bytes()
	}
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

// compressor returns the writer of a raw or errors object, e's gzip writer unless the objects are not
// compressed, and the function that finishes it.
func (p *processor) compressor(e *encoder, buf *bytes.Buffer) (interface{ Write([]byte) (int, error) }, func() error) {
	if p.cfg.RawCompression == None {
		return buf, func() error { return nil }
	}
	e.gz.Reset(buf)
	return e.gz, e.gz.Close
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

// addEventRow adds the Parquet row of an enriched event to rows.
func addEventRow(rows *lake.Batch, r *consumer.Record, ev *messages.Event, loc geo.Location, located bool) {
	rows.AddRow()
	rows.SetMillis(lake.ColEventTime, ev.EventTimeMs)
	rows.SetString(lake.ColUserID, ev.UserID)
	rows.SetString(lake.ColClickID, ev.ClickID)
	rows.SetString(lake.ColEventName, ev.EventName)
	rows.SetString(lake.ColEventType, ev.EventType)
	rows.SetString(lake.ColDeviceType, ev.DeviceType)
	rows.SetString(lake.ColPixelID, ev.PixelID)
	rows.SetString(lake.ColUserIP, ev.UserIP)
	if ms, ok := messages.ParseTimeMs(ev.InsertionTimestamp); ok { // every form Decode accepts, RFC 3339 too
		rows.SetMillis(lake.ColInsertionTime, ms)
	}
	if ad := ev.AdditionalData; ad != nil {
		if ad.Has(messages.HasTimeOnData) {
			rows.SetDouble(lake.ColTimeOnData, ad.TimeOnData)
		}
		if ad.Has(messages.HasPercentViewed) {
			rows.SetDouble(lake.ColPercentViewed, ad.PercentViewed)
		}
		if ad.Has(messages.HasProductID) {
			rows.SetInt64(lake.ColProductID, ad.ProductID)
		}
		if ad.Has(messages.HasPrice) {
			rows.SetDouble(lake.ColPrice, ad.Price)
		}
	}
	rows.SetString(lake.ColName, ev.Name)
	rows.SetString(lake.ColCountry, ev.Country)
	rows.SetString(lake.ColRegion, ev.Region)
	rows.SetString(lake.ColCity, ev.City)
	if located {
		rows.SetString(lake.ColGeoStatus, loc.Status.String())
		if loc.Status == geo.StatusFound && loc.HasCoordinates {
			rows.SetDouble(lake.ColLatitude, loc.Latitude)
			rows.SetDouble(lake.ColLongitude, loc.Longitude)
		}
	}
	rows.SetString(lake.ColShardID, r.ShardID)
	rows.SetString(lake.ColSequenceNumber, r.SequenceNumber)
	rows.SetInt64(lake.ColSubSequence, r.SubSequence)
	rows.SetMillis(lake.ColArrivalTime, r.ArrivedAt.UnixMilli())
}
