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
	box *eventBox
	ev  *messages.Event // &box.ev
}

// encoder is the memory an encode works in, kept between object sets (Archiver.encoders): the decoded
// events, the Parquet rows and writer, and the gzip writer. The objects it returns never share it.
type encoder struct {
	events []eventBox      // events[i] is recs[i] decoded
	valid  []decoded       // the records that decode, pointing into events
	rows   []lake.EventRow // the valid events' rows, pointing into events
	pq     *parquet.GenericWriter[lake.EventRow]
	gz     *gzip.Writer
	errs   bytes.Buffer // the errors object's lines before compression
}

// eventBox is a decoded event and the values its row points to.
type eventBox struct {
	ev        messages.Event
	ad        messages.AdditionalData
	insertion int64
	lat, lon  float64
}

// getEncoder takes an idle encoder, or makes one.
func (a *Archiver) getEncoder() *encoder {
	select {
	case e := <-a.encoders:
		return e
	default:
	}
	gz, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed) // a valid level never fails
	return &encoder{gz: gz, pq: lake.NewEventsWriter(nil, parquet.CreatedBy("clickfleet archive", "", ""))}
}

// putEncoder empties e and keeps it for the next encode, unless enough encoders are idle.
func (a *Archiver) putEncoder(e *encoder) {
	clear(e.events) // drop the strings of the events
	clear(e.valid)  // the records
	clear(e.rows)   // and the rows' strings
	e.valid, e.rows = e.valid[:0], e.rows[:0]
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
		e.rows = append(e.rows, lake.EventRow{})
		fillEventRow(&e.rows[len(e.rows)-1], d, loc, located)
	}
	pq := bytes.NewBuffer(make([]byte, 0, 64*len(e.rows)+4096)) // about the size of a row, one growth at most
	e.pq.Reset(pq)
	if _, err := e.pq.Write(e.rows); err != nil {
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
		e.valid = append(e.valid, decoded{rec: r, box: box, ev: &box.ev})
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

// fillEventRow fills row, a zero row, with the enriched event of d; its pointers point into d.box.
func fillEventRow(row *lake.EventRow, d decoded, loc geo.Location, located bool) {
	ev, box := d.ev, d.box
	row.EventTime, row.UserID, row.ClickID, row.EventName = ev.EventTimeMs, ev.UserID, ev.ClickID, ev.EventName
	row.EventType, row.DeviceType, row.PixelID, row.UserIP = ev.EventType, ev.DeviceType, ev.PixelID, ev.UserIP
	if ms, ok := messages.ParseTimeMs(ev.InsertionTimestamp); ok { // every form Decode accepts, RFC 3339 too
		box.insertion = ms
		row.InsertionTime = &box.insertion
	}
	if ad := ev.AdditionalData; ad != nil {
		if ad.Has(messages.HasTimeOnData) {
			row.TimeOnData = &ad.TimeOnData
		}
		if ad.Has(messages.HasPercentViewed) {
			row.PercentViewed = &ad.PercentViewed
		}
		if ad.Has(messages.HasProductID) {
			row.ProductID = &ad.ProductID
		}
		if ad.Has(messages.HasPrice) {
			row.Price = &ad.Price
		}
	}
	row.Name, row.Country, row.Region, row.City = ev.Name, ev.Country, ev.Region, ev.City
	if located {
		row.GeoStatus = loc.Status.String()
		if loc.Status == geo.StatusFound && loc.HasCoordinates {
			box.lat, box.lon = loc.Latitude, loc.Longitude
			row.Latitude, row.Longitude = &box.lat, &box.lon
		}
	}
	row.ShardID, row.SequenceNumber, row.SubSequence = d.rec.ShardID, d.rec.SequenceNumber, d.rec.SubSequence
	row.ArrivalTime = d.rec.ArrivedAt.UnixMilli()
}
