package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// putRecords is the one operation whose entries Fault.Entries fails.
const putRecords = "PutRecords"

// entryFaults is which entries of one PutRecords call the layer failed, carried in the forwarded
// request's context to mergeEntries.
type entryFaults struct {
	kind   Kind
	failed []bool // by the entry's index in the client's request
	n      int    // how many failed
}

type entryFaultsKey struct{}

// failedEntriesOf returns the entry faults of a forwarded PutRecords call, nil for any other call.
func failedEntriesOf(ctx context.Context) *entryFaults {
	e, _ := ctx.Value(entryFaultsKey{}).(*entryFaults)
	return e
}

// serveEntries answers a PutRecords call under Fault.Entries: it draws which entries fail, forwards the
// others upstream in their order (mergeEntries puts the failed ones back into the answer), or answers at
// once when every entry failed. A body it cannot read as PutRecords is forwarded as it is.
func (l *AWSLayer) serveEntries(w http.ResponseWriter, r *http.Request, f *Fault) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	var req map[string]json.RawMessage
	var entries []json.RawMessage
	if json.Unmarshal(body, &req) != nil || json.Unmarshal(req["Records"], &entries) != nil || len(entries) == 0 {
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		l.proxy.ServeHTTP(w, r)
		return
	}
	ef := l.drawEntries(f, len(entries))
	kept := make([]json.RawMessage, 0, len(entries)-ef.n)
	for i, e := range entries {
		if !ef.failed[i] {
			kept = append(kept, e)
		}
	}
	if len(kept) == 0 {
		writeEntries(w, ef, nil)
		return
	}
	req["Records"], _ = json.Marshal(kept) // raw messages re-marshal without error
	body, _ = json.Marshal(req)
	r = r.WithContext(context.WithValue(r.Context(), entryFaultsKey{}, ef))
	r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	l.proxy.ServeHTTP(w, r)
}

// drawEntries draws which of n entries fail under f and counts them.
func (l *AWSLayer) drawEntries(f *Fault, n int) *entryFaults {
	ef := &entryFaults{kind: f.Kind, failed: make([]bool, n)}
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range ef.failed {
		if l.rnd.Float64() < f.Fraction {
			ef.failed[i] = true
			ef.n++
		}
	}
	s, tot := l.count(putRecords)
	s.Entries += ef.n
	tot.Entries += ef.n
	if ef.n > 0 {
		s.Faulted++
		tot.Faulted++
	}
	return ef
}

// mergeEntries is the proxy's ModifyResponse: an upstream answer to a call with failed entries gets them
// back at their places, so the client sees one answer for all its entries.
func mergeEntries(resp *http.Response) error {
	ef := failedEntriesOf(resp.Request.Context())
	if ef == nil || resp.StatusCode != http.StatusOK {
		return nil
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return fmt.Errorf("faults: read the PutRecords answer: %w", err)
	}
	var out map[string]json.RawMessage
	var stored []json.RawMessage
	if err := json.Unmarshal(body, &out); err != nil {
		return fmt.Errorf("faults: the PutRecords answer %q: %w", body, err)
	}
	if err := json.Unmarshal(out["Records"], &stored); err != nil || len(stored) != len(ef.failed)-ef.n {
		return fmt.Errorf("faults: the PutRecords answer has %d records for %d entries forwarded (%v)", len(stored), len(ef.failed)-ef.n, err)
	}
	var upstreamFailed int
	if c, ok := out["FailedRecordCount"]; ok {
		if err := json.Unmarshal(c, &upstreamFailed); err != nil {
			return fmt.Errorf("faults: FailedRecordCount %s: %w", c, err)
		}
	}
	body = entriesBody(ef, stored, upstreamFailed, out)
	resp.Body, resp.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	resp.Header.Del("Content-Encoding")
	return nil
}

// writeEntries answers a call whose every entry failed, as Kinesis does: 200 and an error per entry.
func writeEntries(w http.ResponseWriter, ef *entryFaults, stored []json.RawMessage) {
	body := entriesBody(ef, stored, 0, map[string]json.RawMessage{})
	w.Header().Set("X-Amzn-RequestId", "faults-injected")
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// entriesBody is a PutRecords answer: out's fields with Records holding, in the client's order, the
// stored entries' results and an error for each failed entry, and FailedRecordCount counting both
// kinds of failure.
func entriesBody(ef *entryFaults, stored []json.RawMessage, upstreamFailed int, out map[string]json.RawMessage) []byte {
	msg := "Rate exceeded for a shard of the stream (injected)."
	if ef.kind == InternalFailure {
		msg = "Internal service failure (injected)."
	}
	failed, _ := json.Marshal(map[string]string{"ErrorCode": string(ef.kind), "ErrorMessage": msg})
	recs := make([]json.RawMessage, len(ef.failed))
	next := 0
	for i := range recs {
		if ef.failed[i] {
			recs[i] = failed
			continue
		}
		recs[i] = stored[next]
		next++
	}
	out["Records"], _ = json.Marshal(recs)
	out["FailedRecordCount"] = json.RawMessage(strconv.Itoa(upstreamFailed + ef.n))
	body, _ := json.Marshal(out)
	return body
}
