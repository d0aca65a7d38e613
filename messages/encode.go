package messages

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// AppendJSON appends e as one JSON object in its schema's shape and returns
// the extended buffer. Passing a reused buffer makes it allocation-free.
//
// POC events are written as: timestamp, user_id, pixel_id, click_id,
// insertion_timestamp (omitted when empty), event_name, user_ip,
// additional_data (omitted when nil; only members whose bit is in Set).
// Lab events as: user_id, event_timestamp (a string when
// EventTimestampQuoted, else a number, exactly as received), event_name,
// event_type (omitted when empty). Then, for either schema, any other field
// that is set: event_type, device_type (omitted when "unknown" or empty),
// timestamp, pixel_id, click_id, user_ip, additional_data,
// insertion_timestamp, and finally the enrichment fields name, country,
// region, city (each omitted when empty).
//
// An empty Timestamp (POC) or EventTimestamp (lab) is written from
// EventTimeMs. For an Event that [Decode] returned (enriched or not),
// decoding the output gives back an equal Event. Strings are
// escaped as encoding/json does, without HTML escaping; invalid UTF-8
// becomes U+FFFD.
//
// Errors: the schema is [SchemaUnknown], a float is NaN or infinite, or
// EventTimestamp is not a JSON number literal. dst is returned unchanged
// with the error.
func (e *Event) AppendJSON(dst []byte) ([]byte, error) {
	b := dst
	var err error
	b = append(b, '{')
	first := true
	key := func(name string) {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, '"')
		b = append(b, name...)
		b = append(b, '"', ':')
	}
	str := func(name, v string) {
		key(name)
		b = appendString(b, v)
	}
	optStr := func(name, v string) {
		if v != "" {
			str(name, v)
		}
	}
	additional := func() {
		if e.AdditionalData != nil && err == nil {
			key("additional_data")
			b, err = e.AdditionalData.appendJSON(b)
		}
	}
	device := e.DeviceType
	if device == UnknownDeviceType {
		device = ""
	}
	switch e.Schema {
	case SchemaPOC:
		ts := e.Timestamp
		if ts == "" {
			ts = formatMs(e.EventTimeMs)
		}
		str("timestamp", ts)
		str("user_id", e.UserID)
		str("pixel_id", e.PixelID)
		str("click_id", e.ClickID)
		optStr("insertion_timestamp", e.InsertionTimestamp)
		str("event_name", e.EventName)
		str("user_ip", e.UserIP)
		additional()
		optStr("event_type", e.EventType)
		optStr("device_type", device)
	case SchemaLab:
		str("user_id", e.UserID)
		key("event_timestamp")
		switch {
		case e.EventTimestamp == "":
			b = strconv.AppendInt(b, e.EventTimeMs, 10)
		case e.EventTimestampQuoted:
			b = appendString(b, e.EventTimestamp)
		case isNumberText(e.EventTimestamp):
			b = append(b, e.EventTimestamp...)
		default:
			return dst, fmt.Errorf("messages: encode event of user %q: event_timestamp %s is not a JSON number", e.UserID, quote(e.EventTimestamp))
		}
		str("event_name", e.EventName)
		optStr("event_type", e.EventType)
		optStr("device_type", device)
		optStr("timestamp", e.Timestamp)
		optStr("pixel_id", e.PixelID)
		optStr("click_id", e.ClickID)
		optStr("user_ip", e.UserIP)
		additional()
		optStr("insertion_timestamp", e.InsertionTimestamp)
	default:
		return dst, fmt.Errorf("encode event of user %q: %w", e.UserID, errUnknownSchema)
	}
	if err != nil {
		return dst, fmt.Errorf("messages: encode event of user %q: %w", e.UserID, err)
	}
	optStr("name", e.Name)
	optStr("country", e.Country)
	optStr("region", e.Region)
	optStr("city", e.City)
	return append(b, '}'), nil
}

var errUnknownSchema = errors.New("messages: unknown schema")

// MarshalJSON implements json.Marshaler with [Event.AppendJSON].
func (e *Event) MarshalJSON() ([]byte, error) {
	return e.AppendJSON(make([]byte, 0, 320))
}

func (a *AdditionalData) appendJSON(b []byte) ([]byte, error) {
	b = append(b, '{')
	n := 0
	num := func(name string, bit AdditionalFields, v float64) error {
		if a.Set&bit == 0 {
			return nil
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("additional_data.%s is %v", name, v)
		}
		if n > 0 {
			b = append(b, ',')
		}
		n++
		b = append(b, '"')
		b = append(b, name...)
		b = append(b, '"', ':')
		b = appendFloat(b, v)
		return nil
	}
	if err := num("time_on_data", HasTimeOnData, a.TimeOnData); err != nil {
		return b, err
	}
	if err := num("percent_viewed", HasPercentViewed, a.PercentViewed); err != nil {
		return b, err
	}
	if a.Set&HasProductID != 0 {
		if n > 0 {
			b = append(b, ',')
		}
		n++
		b = append(b, `"product_id":`...)
		b = strconv.AppendInt(b, a.ProductID, 10)
	}
	if err := num("price", HasPrice, a.Price); err != nil {
		return b, err
	}
	return append(b, '}'), nil
}

// appendFloat formats like encoding/json: shortest representation, 'f'
// notation unless the exponent is very small or large.
func appendFloat(b []byte, f float64) []byte {
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
