package messages

import (
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"time"
	"unicode/utf8"
)

// Top-level fields the decoder knows, in the order field errors are reported.
const (
	fTimestamp = iota
	fEventTimestamp
	fUserID
	fEventName
	fEventType
	fDeviceType
	fPixelID
	fClickID
	fInsertionTimestamp
	fUserIP
	fAdditionalData
	fName
	fCountry
	fRegion
	fCity
	nFields
)

var _ = [1]int{}[nFields-15] // keep fieldNames in step with the constants

// fieldNames maps the field constants to wire names. Read-only.
var fieldNames = [nFields]string{
	fTimestamp:          "timestamp",
	fEventTimestamp:     "event_timestamp",
	fUserID:             "user_id",
	fEventName:          "event_name",
	fEventType:          "event_type",
	fDeviceType:         "device_type",
	fPixelID:            "pixel_id",
	fClickID:            "click_id",
	fInsertionTimestamp: "insertion_timestamp",
	fUserIP:             "user_ip",
	fAdditionalData:     "additional_data",
	fName:               "name",
	fCountry:            "country",
	fRegion:             "region",
	fCity:               "city",
}

func lookupField(k []byte) int {
	switch string(k) {
	case "timestamp":
		return fTimestamp
	case "event_timestamp":
		return fEventTimestamp
	case "user_id":
		return fUserID
	case "event_name":
		return fEventName
	case "event_type":
		return fEventType
	case "device_type":
		return fDeviceType
	case "pixel_id":
		return fPixelID
	case "click_id":
		return fClickID
	case "insertion_timestamp":
		return fInsertionTimestamp
	case "user_ip":
		return fUserIP
	case "additional_data":
		return fAdditionalData
	case "name":
		return fName
	case "country":
		return fCountry
	case "region":
		return fRegion
	case "city":
		return fCity
	}
	return -1
}

const (
	aTimeOnData = iota
	aPercentViewed
	aProductID
	aPrice
	nAdditional
)

func lookupAdditional(k []byte) int {
	switch string(k) {
	case "time_on_data":
		return aTimeOnData
	case "percent_viewed":
		return aPercentViewed
	case "product_id":
		return aProductID
	case "price":
		return aPrice
	}
	return -1
}

// Decode decodes and validates one record of either schema into a new Event.
// On failure it returns a nil Event and a *[ValidationError] (matching
// [ErrInvalid]) listing every problem found; it never returns another kind
// of error and never panics.
//
// Validation rules:
//   - the record is at most [MaxRecordBytes] (1 MiB), valid UTF-8, and one
//     JSON object (surrounding white space allowed);
//   - schema: "event_timestamp" present means lab, else "timestamp" present
//     means POC, else the error is on field "timestamp" ("missing"). A JSON
//     null counts as absent for every field. Unknown fields are ignored; key
//     matching is exact (case-sensitive); a repeated key's last value wins;
//   - user_id: required, a string or a JSON integer (canonicalised to its
//     decimal string), non-empty, at most [MaxUserIDBytes] bytes;
//   - event_name: required string, non-empty, at most [MaxEventNameBytes];
//     names other than the known constants are allowed;
//   - timestamp, insertion_timestamp (optional): strings of the form
//     "2006-01-02 15:04:05[.fraction]" (UTC) or RFC 3339, within the years
//     2000–2100 UTC (see [TimeInRange]);
//   - event_timestamp: Unix milliseconds as a JSON number or a string holding
//     one (the lab's "1626091318000"); a fraction is floored; within the
//     years 2000–2100;
//   - user_ip: optional string, empty or an IPv4/IPv6 address without zone;
//   - device_type, event_type: optional strings of at most [MaxTypeBytes];
//     pixel_id, click_id: optional strings of at most [MaxIDBytes]; name,
//     country, region, city: optional strings;
//   - additional_data: optional object; inside it time_on_data is a number,
//     percent_viewed a number within 0..100, price a number ≥ 0, product_id
//     an integer (a JSON number or a string of digits); other members ignored.
//
// Numbers must be finite float64 (or int64 for integers).
func Decode(data []byte) (*Event, error) {
	box := new(struct {
		e  Event
		ad AdditionalData
	})
	if err := decode(data, &box.e, &box.ad); err != nil {
		return nil, err
	}
	return &box.e, nil
}

// DecodeInto is [Decode] writing into e, which it overwrites completely, so
// that a hot loop can reuse one Event. It does not reuse memory e pointed to
// before (its strings or AdditionalData), so events handed on earlier stay
// intact. On error the contents of e are unspecified.
func DecodeInto(data []byte, e *Event) error {
	return decode(data, e, nil)
}

// DecodeReusing is [Decode] writing into e and ad, which it overwrites completely: e.AdditionalData is
// ad when the event has a valid additional_data, else nil. A loop over many records can reuse both (the
// strings of events decoded earlier stay intact). On error the contents of e and ad are unspecified.
func DecodeReusing(data []byte, e *Event, ad *AdditionalData) error {
	return decode(data, e, ad)
}

// UnmarshalJSON implements json.Unmarshaler with [DecodeInto].
func (e *Event) UnmarshalJSON(data []byte) error {
	return DecodeInto(data, e)
}

var _ json.Unmarshaler = (*Event)(nil)

// fieldErrs collects field errors; its zero value is ready to use.
type fieldErrs struct {
	list []FieldError
}

func (f *fieldErrs) add(field, reason string) {
	f.list = append(f.list, FieldError{Field: field, Reason: reason})
}

func (f *fieldErrs) err() error {
	if len(f.list) == 0 {
		return nil
	}
	return &ValidationError{Errors: f.list}
}

func recordErr(reason string) error {
	return &ValidationError{Errors: []FieldError{{Reason: reason}}}
}

// decode is Decode/DecodeInto; ad, when not nil, is where AdditionalData goes.
func decode(data []byte, e *Event, ad *AdditionalData) error {
	*e = Event{}
	if len(data) > MaxRecordBytes {
		return recordErr(fmt.Sprintf("record is too large (%d bytes, max %d)", len(data), MaxRecordBytes))
	}
	if !utf8.Valid(data) {
		return recordErr("record is not valid UTF-8")
	}
	end, _, err := decodeValue(data, 0, e, ad, nil)
	return whole(data, end, err)
}

// whole checks that nothing but white space follows a decoded record's value, which decides before
// the record's own errors; a syntax error becomes the record's validation error.
func whole(data []byte, end int, err error) error {
	if se, ok := err.(*SyntaxError); ok { // the scanner's own, never wrapped
		return recordErr(se.Error())
	}
	s := scanner{data: data, pos: end}
	s.skipSpace()
	if s.pos != len(data) {
		return recordErr((&syntaxError{Offset: s.pos, Msg: fmt.Sprintf("unexpected %q after top-level value", rune(data[s.pos]))}).Error())
	}
	return err
}

// decodeValue scans the value at data[start] (after white space) and, when it is an object, decodes it into e.
// It returns the offset after the value and the span of the click_id member's value (quotes included;
// start -1 when absent). A *SyntaxError means the value could not be delimited; any other error is a
// *ValidationError about a delimited value. st, when not nil, adds its checks; its duplicate keys are
// collected in dups.
func decodeValue(data []byte, start int, e *Event, ad *AdditionalData, st *Strict) (end int, click [2]int, err error) {
	click = [2]int{-1, -1}
	var fields [nFields]span
	s := scanner{data: data, pos: start, wantAdd: true}
	if st != nil {
		s.limit = st.MaxDepth
		s.strict = st.NoDuplicateKeys
	}
	s.skipSpace()
	if s.pos >= len(data) || data[s.pos] != '{' {
		v, err := s.value(0, "")
		if err != nil {
			return s.pos, click, err
		}
		return s.pos, click, recordErr("record is not a JSON object (it is " + v.kind.String() + ")")
	}
	if err := s.object(1, tableTop, fields[:], ""); err != nil {
		return s.pos, click, err
	}
	end = s.pos
	switch f := fields[fClickID]; f.kind {
	case kindString:
		click = [2]int{f.start - 1, f.end + 1}
	case kindNull:
		click = [2]int{f.start, f.end}
	}
	err = decodeFields(data, &fields, &s.add, e, ad)
	if st != nil {
		err = st.check(e, err, s.dups.list)
	}
	return end, click, err
}

// decodeFields turns the scanned members into e, validating each.
func decodeFields(data []byte, fields *[nFields]span, members *[nAdditional]span, e *Event, ad *AdditionalData) error {
	for i := range fields {
		if fields[i].kind == kindNull {
			fields[i].kind = kindNone
		}
	}

	// Materialise every string-valued field into one buffer, then one string.
	var strs [nFields]struct{ lo, hi int }
	size := 0
	for i, f := range fields {
		if f.kind == kindString || (f.kind == kindNumber && (i == fUserID || i == fEventTimestamp)) {
			size += f.end - f.start
		}
	}
	var stack [512]byte
	buf := stack[:0]
	if size > len(stack) {
		buf = make([]byte, 0, size)
	}
	var errs fieldErrs
	userIDBad := false
	for i, f := range fields {
		switch {
		case f.kind == kindString:
			lo := len(buf)
			if f.esc {
				buf = appendUnescaped(buf, data[f.start:f.end])
			} else {
				buf = append(buf, data[f.start:f.end]...)
			}
			strs[i] = struct{ lo, hi int }{lo, len(buf)}
		case f.kind == kindNumber && i == fUserID:
			lit := data[f.start:f.end]
			if !isIntLiteral(lit) {
				errs.add("user_id", "not a string or an integer: "+string(lit))
				userIDBad = true
				continue
			}
			if string(lit) == "-0" {
				lit = lit[1:]
			}
			lo := len(buf)
			buf = append(buf, lit...)
			strs[i] = struct{ lo, hi int }{lo, len(buf)}
		case f.kind == kindNumber && i == fEventTimestamp:
			lo := len(buf)
			buf = append(buf, data[f.start:f.end]...)
			strs[i] = struct{ lo, hi int }{lo, len(buf)}
		}
	}
	all := string(buf)
	str := func(i int) string { return all[strs[i].lo:strs[i].hi] }

	// Schema and event time.
	switch {
	case fields[fEventTimestamp].kind != kindNone:
		e.Schema = SchemaLab
		f := fields[fEventTimestamp]
		switch f.kind {
		case kindNumber, kindString:
			e.EventTimestamp = str(fEventTimestamp)
			e.EventTimestampQuoted = f.kind == kindString
			ms, reason := parseUnixMs(e.EventTimestamp)
			if reason != "" {
				errs.add("event_timestamp", reason)
			}
			e.EventTimeMs = ms
		default:
			errs.add("event_timestamp", "not a number (Unix milliseconds)")
		}
	case fields[fTimestamp].kind != kindNone:
		e.Schema = SchemaPOC
	default:
		errs.add("timestamp", "missing (an event needs timestamp or event_timestamp)")
	}
	if fields[fTimestamp].kind != kindNone {
		ms, ok := checkTime(&errs, "timestamp", fields[fTimestamp].kind, str(fTimestamp))
		if ok {
			e.Timestamp = str(fTimestamp)
			if e.Schema == SchemaPOC {
				e.EventTimeMs = ms
			}
		}
	}

	// user_id
	switch fields[fUserID].kind {
	case kindNone:
		errs.add("user_id", "missing")
	case kindString, kindNumber:
		if userIDBad {
			break // already reported: not an integer
		}
		v := str(fUserID)
		switch {
		case v == "":
			errs.add("user_id", "empty")
		case len(v) > MaxUserIDBytes:
			errs.add("user_id", tooLong(len(v), MaxUserIDBytes))
		default:
			e.UserID = v
		}
	default:
		errs.add("user_id", "not a string")
	}

	// event_name
	switch fields[fEventName].kind {
	case kindNone:
		errs.add("event_name", "missing")
	case kindString:
		v := str(fEventName)
		switch {
		case v == "":
			errs.add("event_name", "empty")
		case len(v) > MaxEventNameBytes:
			errs.add("event_name", tooLong(len(v), MaxEventNameBytes))
		default:
			e.EventName = v
		}
	default:
		errs.add("event_name", "not a string")
	}

	e.EventType = optString(&errs, fields[:], fEventType, MaxTypeBytes, str)
	e.DeviceType = optString(&errs, fields[:], fDeviceType, MaxTypeBytes, str)
	if e.DeviceType == "" {
		e.DeviceType = UnknownDeviceType
	}
	e.PixelID = optString(&errs, fields[:], fPixelID, MaxIDBytes, str)
	e.ClickID = optString(&errs, fields[:], fClickID, MaxIDBytes, str)

	if f := fields[fInsertionTimestamp]; f.kind != kindNone {
		if _, ok := checkTime(&errs, "insertion_timestamp", f.kind, str(fInsertionTimestamp)); ok {
			e.InsertionTimestamp = str(fInsertionTimestamp)
		}
	}

	if ip := optString(&errs, fields[:], fUserIP, math.MaxInt, str); ip != "" {
		if a, err := netip.ParseAddr(ip); err != nil || a.Zone() != "" {
			errs.add("user_ip", "not an IP address: "+quote(ip))
		} else {
			e.UserIP = ip
		}
	}

	switch f := fields[fAdditionalData]; f.kind {
	case kindNone:
	case kindObject:
		if ad == nil {
			ad = new(AdditionalData)
		}
		*ad = AdditionalData{}
		if decodeAdditional(&errs, data, members, ad) {
			e.AdditionalData = ad
		}
	default:
		errs.add("additional_data", "not an object")
	}

	e.Name = optString(&errs, fields[:], fName, math.MaxInt, str)
	e.Country = optString(&errs, fields[:], fCountry, math.MaxInt, str)
	e.Region = optString(&errs, fields[:], fRegion, math.MaxInt, str)
	e.City = optString(&errs, fields[:], fCity, math.MaxInt, str)

	return errs.err()
}

func tooLong(n, limit int) string {
	return fmt.Sprintf("too long (%d bytes, max %d)", n, limit)
}

// optString returns the optional string field i, or "" after recording an
// error when it has the wrong type or is longer than limit bytes.
func optString(errs *fieldErrs, fields []span, i, limit int, str func(int) string) string {
	switch fields[i].kind {
	case kindNone:
		return ""
	case kindString:
		v := str(i)
		if len(v) > limit {
			errs.add(fieldNames[i], tooLong(len(v), limit))
			return ""
		}
		return v
	default:
		errs.add(fieldNames[i], "not a string")
		return ""
	}
}

// checkTime validates a POC-style timestamp field and returns its Unix ms.
func checkTime(errs *fieldErrs, name string, k kind, v string) (int64, bool) {
	if k != kindString {
		errs.add(name, "not a string")
		return 0, false
	}
	ms, ok := parseTimeMs(v)
	if !ok {
		errs.add(name, "not a time: "+quote(v)+` (want "2006-01-02 15:04:05.000000" or RFC 3339)`)
		return 0, false
	}
	if !TimeInRange(ms) {
		errs.add(name, "out of range: "+quote(v)+" (want years 2000-2100)")
		return 0, false
	}
	return ms, true
}

// parseUnixMs parses the lab's event_timestamp text; reason is "" on success.
func parseUnixMs(v string) (ms int64, reason string) {
	if !isNumberText(v) {
		return 0, "not Unix milliseconds: " + quote(v)
	}
	if isIntLiteral(v) {
		n, err := strconv.ParseInt(v, 10, 64)
		if err == nil {
			ms = n
		} else {
			return 0, rangeMs(v)
		}
	} else {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < math.MinInt64 || f >= math.MaxInt64 {
			return 0, rangeMs(v)
		}
		ms = int64(math.Floor(f))
	}
	if !TimeInRange(ms) {
		return 0, rangeMs(v)
	}
	return ms, ""
}

func rangeMs(v string) string {
	r := "out of range: " + quote(v) + " (want Unix milliseconds in years 2000-2100"
	if f, err := strconv.ParseFloat(v, 64); err == nil && TimeInRange(int64(f*1000)) && f < 1e11 {
		r += "; seconds instead of milliseconds?"
	}
	return r + ")"
}

// isIntLiteral reports whether b, a valid JSON number, has no fraction or
// exponent.
func isIntLiteral[T string | []byte](b T) bool {
	for i := 0; i < len(b); i++ {
		if c := b[i]; c == '.' || c == 'e' || c == 'E' {
			return false
		}
	}
	return true
}

// decodeAdditional fills ad from the additional_data members; it reports
// whether the object was free of errors.
func decodeAdditional(errs *fieldErrs, data []byte, members *[nAdditional]span, ad *AdditionalData) bool {
	n := len(errs.list)
	num := func(i int, name string, bit AdditionalFields) (float64, bool) {
		m := members[i]
		switch m.kind {
		case kindNone, kindNull:
			return 0, false
		case kindNumber:
			v, err := strconv.ParseFloat(string(data[m.start:m.end]), 64)
			if err != nil {
				errs.add(name, "out of range: "+string(data[m.start:m.end]))
				return 0, false
			}
			ad.Set |= bit
			return v, true
		default:
			errs.add(name, "not a number")
			return 0, false
		}
	}
	ad.TimeOnData, _ = num(aTimeOnData, "additional_data.time_on_data", HasTimeOnData)
	if v, ok := num(aPercentViewed, "additional_data.percent_viewed", HasPercentViewed); ok {
		if v < 0 || v > 100 {
			errs.add("additional_data.percent_viewed", "out of range: "+strconv.FormatFloat(v, 'g', -1, 64)+" (want 0..100)")
			ad.Set &^= HasPercentViewed
		} else {
			ad.PercentViewed = v
		}
	}
	if v, ok := num(aPrice, "additional_data.price", HasPrice); ok {
		if v < 0 {
			errs.add("additional_data.price", "negative: "+strconv.FormatFloat(v, 'g', -1, 64))
			ad.Set &^= HasPrice
		} else {
			ad.Price = v
		}
	}
	switch m := members[aProductID]; m.kind {
	case kindNone, kindNull:
	case kindNumber, kindString:
		lit := data[m.start:m.end]
		if m.kind == kindString && m.esc {
			lit = appendUnescaped(nil, lit)
		}
		if !isIntText(lit) {
			errs.add("additional_data.product_id", "not an integer: "+quote(string(lit)))
			break
		}
		v, err := strconv.ParseInt(string(lit), 10, 64)
		if err != nil {
			errs.add("additional_data.product_id", "out of range: "+quote(string(lit)))
			break
		}
		ad.ProductID = v
		ad.Set |= HasProductID
	default:
		errs.add("additional_data.product_id", "not an integer")
	}
	return len(errs.list) == n
}

// isIntText reports whether b is an optional '-' followed by digits.
func isIntText(b []byte) bool {
	if len(b) > 0 && b[0] == '-' {
		b = b[1:]
	}
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// formatMs formats Unix ms like the POC seed's timestamps.
func formatMs(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02 15:04:05.000000")
}

// isNumberText reports whether v is exactly one JSON number literal.
func isNumberText(v string) bool {
	i := 0
	digits := func() int {
		n := 0
		for i < len(v) && v[i] >= '0' && v[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(v) && v[i] == '-' {
		i++
	}
	switch {
	case i < len(v) && v[i] == '0':
		i++
	case digits() == 0:
		return false
	}
	if i < len(v) && v[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(v) && (v[i] == 'e' || v[i] == 'E') {
		i++
		if i < len(v) && (v[i] == '+' || v[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(v)
}
