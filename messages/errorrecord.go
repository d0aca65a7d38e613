package messages

import (
	"unicode/utf8"
)

// ErrorStream is the default name of the Kinesis stream that receives
// [ErrorRecord]s.
const ErrorStream = "clickstream-errors"

// The other default names of the pipeline's resources: the input stream, the high-intent (offers)
// stream, and the DynamoDB sessions table.
const (
	Stream        = "clickstream"
	OffersStream  = "clickstream-offers"
	SessionsTable = "sessions"
)

// Limits keeping an encoded [ErrorRecord] under Kinesis' 1 MiB record limit
// (base64 grows data by a third).
const (
	// MaxErrorData is the most bytes of the bad record an ErrorRecord keeps.
	MaxErrorData = 640 << 10
	// MaxErrorReason is the most bytes of reason an ErrorRecord keeps.
	MaxErrorReason = 4 << 10
)

// ErrorRecord is what goes to the error stream for a record that cannot be
// decoded or validated, so that no record is ever dropped silently. Encode
// it with encoding/json: Data becomes base64.
type ErrorRecord struct {
	// Reason is the error text, e.g. "invalid event: user_id: missing".
	Reason string `json:"reason"`
	// Stream is the stream the record was read from.
	Stream string `json:"stream"`
	// ShardID is the shard the record was read from.
	ShardID string `json:"shard_id"`
	// SequenceNumber is the record's sequence number.
	SequenceNumber string `json:"sequence_number"`
	// Data is the record's payload (its first MaxErrorData bytes), base64
	// in JSON.
	Data []byte `json:"data"`
	// Truncated is true when Data or Reason was cut to its limit; omitted
	// when false.
	Truncated bool `json:"truncated,omitempty"`
}

// NewErrorRecord returns the error record for a record (stream, shardID,
// sequenceNumber, data) that failed with err, typically from [Decode]. It
// copies data, so the caller may reuse its buffer. A nil err gives the
// reason "unknown error". Data and Reason are cut to [MaxErrorData] and
// [MaxErrorReason] bytes (Reason on a rune boundary), setting Truncated.
func NewErrorRecord(stream, shardID, sequenceNumber string, data []byte, err error) ErrorRecord {
	r := ErrorRecord{Stream: stream, ShardID: shardID, SequenceNumber: sequenceNumber}
	r.Reason = "unknown error"
	if err != nil {
		r.Reason = err.Error()
	}
	if len(r.Reason) > MaxErrorReason {
		cut := MaxErrorReason
		for cut > 0 && !utf8.RuneStart(r.Reason[cut]) {
			cut--
		}
		r.Reason = r.Reason[:cut]
		r.Truncated = true
	}
	if len(data) > MaxErrorData {
		data = data[:MaxErrorData]
		r.Truncated = true
	}
	r.Data = append([]byte{}, data...)
	return r
}
