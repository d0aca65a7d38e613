package messages

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
)

// Schema tells which seed shape an event arrived in; [Event.AppendJSON]
// writes the event back in that shape.
type Schema uint8

const (
	// SchemaUnknown is the zero Schema. Decoded events never have it.
	SchemaUnknown Schema = iota
	// SchemaPOC is the aws-clickstream-poc shape, recognised by "timestamp".
	SchemaPOC
	// SchemaLab is the kinesis-sessionization-lab shape, recognised by
	// "event_timestamp" (which wins when both are present).
	SchemaLab
)

// String returns "poc", "lab" or "unknown"; stable, usable as a metric label.
func (s Schema) String() string {
	switch s {
	case SchemaPOC:
		return "poc"
	case SchemaLab:
		return "lab"
	default:
		return "unknown"
	}
}

// Event names the seeds produce. Other names are valid too: the pipeline must
// not reject new kinds of event, so these exist for filters and for bounding
// metric label values (see [KnownEventName]).
const (
	POCSearch      = "Search"      // POC: a search
	POCAddToCart   = "AddToCart"   // POC: an item put in the cart
	POCViewContent = "ViewContent" // POC: content viewed; the offers filter's event
	POCPurchase    = "Purchase"    // POC: a purchase

	LabCheckout = "checkout" // lab: checkout
	LabSearch   = "search"   // lab: a search
	LabCategory = "category" // lab: a category page
	LabDetail   = "detail"   // lab: a detail page
	LabNavigate = "navigate" // lab: navigation
)

// KnownEventName reports whether name is one of the seeds' event names
// (case-sensitive). Use it to map event names onto a bounded set of metric
// labels; never to reject events.
func KnownEventName(name string) bool {
	switch name {
	case POCSearch, POCAddToCart, POCViewContent, POCPurchase,
		LabCheckout, LabSearch, LabCategory, LabDetail, LabNavigate:
		return true
	}
	return false
}

// UnknownDeviceType is [Event.DeviceType] when the record has no
// "device_type" (or an empty one), as in every POC event.
const UnknownDeviceType = "unknown"

// Field limits enforced by [Decode].
const (
	// MaxRecordBytes is the largest record accepted: Kinesis' 1 MiB data limit.
	MaxRecordBytes = 1 << 20
	// MaxUserIDBytes bounds user_id, the partition key (Kinesis allows 256).
	MaxUserIDBytes = 256
	// MaxEventNameBytes bounds event_name.
	MaxEventNameBytes = 64
	// MaxTypeBytes bounds device_type and event_type (device_type is part of
	// the session id, a DynamoDB key).
	MaxTypeBytes = 64
	// MaxIDBytes bounds pixel_id and click_id.
	MaxIDBytes = 256
)

// Event is one clickstream event of either schema, decoded and validated,
// plus the optional enrichment fields. The zero value is not a valid event.
//
// String fields hold the values as they were on the wire (unescaped), so an
// event re-encodes in its own shape with its own field names. A decoded
// event's strings share one backing allocation. Events are plain values: not
// safe for concurrent mutation, safe to share once no longer written.
type Event struct {
	// Schema is the shape the event arrived in.
	Schema Schema
	// EventTimeMs is the event time in Unix milliseconds (UTC), from
	// "timestamp" (POC, fraction truncated to ms) or "event_timestamp" (lab).
	EventTimeMs int64

	// UserID is "user_id", the partition key; a JSON integer on the wire is
	// canonicalised to its decimal string. Never empty in a decoded event.
	UserID string
	// EventName is "event_name"; never empty in a decoded event, and not
	// necessarily one of the known names.
	EventName string
	// DeviceType is "device_type", or [UnknownDeviceType] when missing or
	// empty. Never empty in a decoded event.
	DeviceType string
	// EventType is the lab's "event_type" (e.g. "click"); empty when missing.
	EventType string

	// Timestamp is the POC "timestamp" text as sent, e.g.
	// "2021-07-12 12:01:58.732726". Empty for lab events that lack it.
	Timestamp string
	// InsertionTimestamp is the POC "insertion_timestamp" text; optional.
	InsertionTimestamp string
	// EventTimestamp is the lab "event_timestamp" as sent, without quotes:
	// a JSON number literal such as "1626091318000". Empty for POC events.
	EventTimestamp string
	// EventTimestampQuoted is true when "event_timestamp" was a JSON string
	// (as the lab's envsubst template produces), false when it was a number.
	EventTimestampQuoted bool

	// PixelID is the POC "pixel_id"; empty when missing.
	PixelID string
	// ClickID is "click_id"; empty when missing (or null, or ""). The ingest
	// gives every event one (a UUIDv7) before putting it, so copies of an
	// event that a retried put stored twice share it. The consumer fills a
	// missing one with [DerivedClickID] so that replays get the same id.
	ClickID string
	// UserIP is "user_ip": empty (as in the POC seed) or an IPv4/IPv6 address.
	UserIP string
	// AdditionalData is the POC "additional_data" object; nil when missing.
	AdditionalData *AdditionalData

	// Name is the user's full name added by enrichment; omitted when empty.
	Name string
	// Country is the geo country added by enrichment; omitted when empty.
	Country string
	// Region is the geo region added by enrichment; omitted when empty.
	Region string
	// City is the geo city added by enrichment; omitted when empty.
	City string
}

// AdditionalData is the POC event's "additional_data" object. Fields not
// present on the wire are zero and their bit in Set is clear; unknown fields
// inside the object are ignored.
type AdditionalData struct {
	// TimeOnData is "time_on_data", a number.
	TimeOnData float64
	// PercentViewed is "percent_viewed", a number within 0..100.
	PercentViewed float64
	// ProductID is "product_id", an integer (a JSON number or a digit string).
	ProductID int64
	// Price is "price", a number ≥ 0.
	Price float64
	// Set records which of the fields above were present;
	// [Event.AppendJSON] writes only those.
	Set AdditionalFields
}

// AdditionalFields is a set of [AdditionalData] fields.
type AdditionalFields uint8

// Bits of [AdditionalFields].
const (
	HasTimeOnData    AdditionalFields = 1 << iota // time_on_data was present
	HasPercentViewed                              // percent_viewed was present
	HasProductID                                  // product_id was present
	HasPrice                                      // price was present
)

// Has reports whether every field in f was present.
func (a *AdditionalData) Has(f AdditionalFields) bool { return a != nil && a.Set&f == f }

// DerivedClickID returns a stable click id for a record that has none: 32
// lowercase hex digits (the seed's click_id format), the first 16 bytes of
// the SHA-256 of shard id, sequence number and sub-sequence number. The same
// inputs always give the same id, so a replayed record keeps its id. It is
// an identifier, not a secret.
func DerivedClickID(shardID, sequenceNumber string, subSequence int64) string {
	var buf [128]byte
	b := append(buf[:0], shardID...)
	b = append(b, 0)
	b = append(b, sequenceNumber...)
	b = append(b, 0)
	b = strconv.AppendInt(b, subSequence, 10)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}
