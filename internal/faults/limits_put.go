package faults

import (
	"encoding/json"
	"net/http"
)

// putRecords admits each record of a PutRecords call within its shard's write limits. As AWS does, the
// call succeeds (HTTP 200) and each record over a limit fails in the answer with
// ProvisionedThroughputExceededException, in its place; only the admitted records reach the upstream (the
// layer rewrites the body, which the emulators do not check against the signature).
func (l *Limits) putRecords(w http.ResponseWriter, r *http.Request) {
	const op = "PutRecords"
	var in putRecordsIn
	if body, read := readBody(r); !read || json.Unmarshal(body, &in) != nil {
		l.passUnmapped(w, r, op)
		return
	}
	stream := kinesisRef{StreamName: in.StreamName, StreamARN: in.StreamARN}.stream()
	entries := make([]putRecordEntry, len(in.Records))
	for i, raw := range in.Records {
		if json.Unmarshal(raw, &entries[i]) != nil {
			l.passUnmapped(w, r, op)
			return
		}
	}
	refused, ok := l.admitRecords(r, op, stream, entries)
	if !ok {
		l.passUnmapped(w, r, op)
		return
	}
	n := 0
	for _, shard := range refused {
		if shard != "" {
			n++
		}
	}
	switch n {
	case 0:
		l.next.ServeHTTP(w, r)
	case len(refused):
		writeJSON(w, mergePut(stream, refused, nil))
	default:
		l.putAdmitted(w, r, in, stream, refused)
	}
}

// putRecord admits a PutRecord call within its shard's write limits.
func (l *Limits) putRecord(w http.ResponseWriter, r *http.Request) {
	const op = "PutRecord"
	var in struct {
		kinesisRef
		putRecordEntry
	}
	if body, read := readBody(r); !read || json.Unmarshal(body, &in) != nil {
		l.passUnmapped(w, r, op)
		return
	}
	stream := in.stream()
	refused, ok := l.admitRecords(r, op, stream, []putRecordEntry{in.putRecordEntry})
	switch {
	case !ok:
		l.passUnmapped(w, r, op)
	case refused[0] != "":
		writeKinesisError(w, ThroughputExceeded, shardMessage(stream, refused[0]))
	default:
		l.next.ServeHTTP(w, r)
	}
}

// admitRecords places records on stream's open shards and admits each within its shard's limits. It
// returns, per record, "" when admitted and else the shard that refused it; ok is false when the stream's
// shards are not known (the call then passes unlimited). A record outside every listed range (a reshard
// newer than the map) is admitted.
func (l *Limits) admitRecords(r *http.Request, op, stream string, entries []putRecordEntry) (refused []string, ok bool) {
	m, ok := l.shards.lookup(r.Context(), stream)
	if !ok {
		return nil, false
	}
	shards := make([]string, len(entries))
	m.mu.Lock()
	for i, e := range entries {
		shards[i], _ = m.find(recordHashKey(e.PartitionKey, e.ExplicitHashKey))
	}
	m.mu.Unlock()
	refused = make([]string, len(entries))
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for i, e := range entries {
		if shards[i] == "" {
			continue
		}
		if limit := l.admitWrite(op, stream, shards[i], int64(e.Data)+int64(len(e.PartitionKey)), now); limit != "" {
			refused[i] = shards[i]
			l.metrics.throttled.WithLabelValues(op, limit).Inc()
		}
	}
	return refused, true
}

// putAdmitted sends the admitted records upstream and answers with the upstream's results and the
// refusals, each in its record's place.
func (l *Limits) putAdmitted(w http.ResponseWriter, r *http.Request, in putRecordsIn, stream string, refused []string) {
	kept := make([]json.RawMessage, 0, len(in.Records))
	for i, raw := range in.Records {
		if refused[i] == "" {
			kept = append(kept, raw)
		}
	}
	body, err := json.Marshal(putRecordsIn{StreamName: in.StreamName, StreamARN: in.StreamARN, Records: kept})
	if err != nil {
		writeKinesisError(w, InternalFailure, "the limits layer could not re-encode the request")
		return
	}
	setBody(r, body)
	bw := newBufferWriter()
	l.next.ServeHTTP(bw, r)
	var up putRecordsOut
	if bw.status != http.StatusOK || !decodeBody(bw.header, bw.buf.Bytes(), &up) || len(up.Records) != len(kept) {
		bw.copyTo(w) // an error, or an answer the layer cannot merge: as the upstream sent it
		return
	}
	writeJSON(w, mergePut(stream, refused, &up))
}

// mergePut is PutRecords' answer: the upstream's result for each admitted record (up nil: none was) and
// a ProvisionedThroughputExceededException result for each refused one, in the request's order.
func mergePut(stream string, refused []string, up *putRecordsOut) putRecordsOut {
	out := putRecordsOut{Records: make([]json.RawMessage, len(refused))}
	if up != nil {
		out.EncryptionType, out.FailedRecordCount = up.EncryptionType, up.FailedRecordCount
	}
	j := 0
	for i, shard := range refused {
		if shard == "" {
			out.Records[i] = up.Records[j]
			j++
			continue
		}
		out.Records[i], _ = json.Marshal(struct{ ErrorCode, ErrorMessage string }{string(ThroughputExceeded), shardMessage(stream, shard)})
		out.FailedRecordCount++
	}
	return out
}
