package faults

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
)

// The Kinesis request and response members the limits layer reads (JSON 1.1, as the SDKs send them).

// kinesisRef names what a call is about: its stream (by name or ARN), shard and consumer.
type kinesisRef struct {
	StreamName  string
	StreamARN   string
	ShardID     string // ShardId: encoding/json matches member names case-insensitively
	ConsumerARN string
}

// stream is the stream's name, from StreamName or else from an ARN (a consumer's ARN holds its stream's).
func (k kinesisRef) stream() string {
	if k.StreamName != "" {
		return k.StreamName
	}
	for _, arn := range []string{k.StreamARN, k.ConsumerARN} {
		if _, rest, ok := strings.Cut(arn, ":stream/"); ok {
			name, _, _ := strings.Cut(rest, "/")
			return name
		}
	}
	return ""
}

type shardIteratorOut struct{ ShardIterator *string }

type getRecordsIn struct{ ShardIterator string }

// getRecordsOut is a GetRecords answer as far as the layer needs it: the records' data sizes, not their
// data (dataLen decodes no base64), and the next iterator.
type getRecordsOut struct {
	NextShardIterator *string
	Records           []struct{ Data dataLen }
}

func (o *getRecordsOut) bytes() int64 {
	var n int64
	for _, r := range o.Records {
		n += int64(r.Data)
	}
	return n
}

// putRecordEntry is one record of PutRecords, or PutRecord's request.
type putRecordEntry struct {
	Data            dataLen
	PartitionKey    string
	ExplicitHashKey string
}

type putRecordsIn struct {
	StreamName string            `json:",omitempty"`
	StreamARN  string            `json:",omitempty"`
	Records    []json.RawMessage `json:"Records"`
}

type putRecordsOut struct {
	EncryptionType    string            `json:",omitempty"`
	FailedRecordCount int               `json:"FailedRecordCount"`
	Records           []json.RawMessage `json:"Records"`
}

// dataLen unmarshals a base64 blob (a JSON string) into the length of the bytes it encodes, without
// decoding it.
type dataLen int

// UnmarshalJSON implements json.Unmarshaler.
func (d *dataLen) UnmarshalJSON(b []byte) error {
	if len(b) < 2 || b[0] != '"' {
		*d = 0 // null or not a string: the upstream answers for it
		return nil
	}
	s := b[1 : len(b)-1]
	n := base64.StdEncoding.DecodedLen(len(s))
	for i := len(s) - 1; i >= 0 && i >= len(s)-2 && s[i] == '='; i-- {
		n--
	}
	*d = dataLen(n)
	return nil
}

// maxBody bounds what the layer reads of a request to look into: more than PutRecords' 10 MiB request,
// base64 and JSON included.
const maxBody = 32 << 20

// readBody reads r's body (up to maxBody; ok is false beyond) and puts it back for the upstream.
func readBody(r *http.Request) (body []byte, ok bool) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(body) > maxBody {
		r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), r.Body))
		return nil, false
	}
	setBody(r, body)
	return body, true
}

// setBody makes body the request's body.
func setBody(r *http.Request, body []byte) {
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.Header.Del("Content-Length") // the transport writes it from ContentLength
}

// decodeBody unmarshals a response body, gunzipping it when its header says it is compressed.
func decodeBody(h http.Header, body []byte, v any) bool {
	if strings.EqualFold(h.Get("Content-Encoding"), "gzip") {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return false
		}
		return json.NewDecoder(io.LimitReader(zr, maxBody)).Decode(v) == nil
	}
	return json.Unmarshal(body, v) == nil
}

// bufferWriter holds a whole response, for the layer to rewrite before the client sees it.
type bufferWriter struct {
	header http.Header
	status int
	buf    bytes.Buffer
}

func newBufferWriter() *bufferWriter { return &bufferWriter{header: http.Header{}} }

// Header implements http.ResponseWriter.
func (b *bufferWriter) Header() http.Header { return b.header }

// WriteHeader implements http.ResponseWriter.
func (b *bufferWriter) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}

// Write implements http.ResponseWriter.
func (b *bufferWriter) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.buf.Write(p)
}

// decode unmarshals a held 200 answer into v; false when the answer was an error or unreadable.
func (b *bufferWriter) decode(v any) bool {
	return (b.status == 0 || b.status == http.StatusOK) && decodeBody(b.header, b.buf.Bytes(), v)
}

// copyTo sends the held response as it is.
func (b *bufferWriter) copyTo(w http.ResponseWriter) {
	for k, v := range b.header {
		w.Header()[k] = v
	}
	if b.status == 0 {
		b.status = http.StatusOK
	}
	w.WriteHeader(b.status)
	_, _ = w.Write(b.buf.Bytes())
}

// account is the account id in the layer's messages (kinesalite's and kinesis-mock's default).
const account = "000000000000"

// writeKinesisError answers a Kinesis call with kind (HTTP 400) and msg, as AWS does.
func writeKinesisError(w http.ResponseWriter, kind Kind, msg string) {
	body, _ := json.Marshal(struct {
		Type    string `json:"__type"`
		Message string `json:"message"`
	}{string(kind), msg})
	w.Header().Set("X-Amzn-RequestId", "limits")
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-ErrorType", string(kind))
	w.WriteHeader(http.StatusBadRequest)
	_, _ = w.Write(body)
}

// writeJSON answers with a 200 JSON 1.1 body.
func writeJSON(w http.ResponseWriter, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	w.Header().Set("X-Amzn-RequestId", "limits")
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_, _ = w.Write(body)
}
