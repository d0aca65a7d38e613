package messages

import "time"

// SessionIDTimeLayout is the time layout of the start time inside a session
// id: UTC with milliseconds, e.g. "20210712T120158.732Z".
const SessionIDTimeLayout = "20060102T150405.000Z"

// SessionTimeLayout is the layout of [Session.SessionTime], the lab's
// HH:mm:ss column.
const SessionTimeLayout = "15:04:05"

// Session is one user session as stored in the DynamoDB "sessions" table
// (hash key session_id, GSI on user_id). The JSON tags are the table's
// attribute names. Writes set absolute values, so a replay rewrites the same
// item. It is a plain value with no locking.
type Session struct {
	// SessionID is [SessionID](UserID, DeviceType, StartMs).
	SessionID string `json:"session_id"`
	// UserID is the session's user.
	UserID string `json:"user_id"`
	// DeviceType is the device type of the session's first-arrived event.
	DeviceType string `json:"device_type"`
	// SessionTime is the start as "HH:mm:ss" UTC ([SessionTimeLayout]).
	SessionTime string `json:"session_time"`
	// StartMs is the event time (Unix ms) of the session's first-arrived event.
	StartMs int64 `json:"start_ms"`
	// LastEventMs is the highest event time (Unix ms) in the session.
	LastEventMs int64 `json:"last_event_ms"`
	// EventCount is the number of events in the session.
	EventCount int64 `json:"event_count"`
	// UpdatedMs is the wall-clock time (Unix ms) of the last write; set by
	// the writer.
	UpdatedMs int64 `json:"updated_ms"`
}

// SessionID returns "<user_id>_<device_type>_<start UTC as
// 20060102T150405.000Z>", e.g. "user1_desktop_20210712T120158.732Z". An
// empty deviceType counts as [UnknownDeviceType]. Derived from event data
// only, so replays give the same id.
func SessionID(userID, deviceType string, startMs int64) string {
	if deviceType == "" {
		deviceType = UnknownDeviceType
	}
	b := make([]byte, 0, len(userID)+len(deviceType)+2+len(SessionIDTimeLayout))
	return string(appendSessionID(b, userID, deviceType, startMs))
}

// appendSessionID appends the SessionID of a non-empty deviceType.
func appendSessionID(b []byte, userID, deviceType string, startMs int64) []byte {
	b = append(b, userID...)
	b = append(b, '_')
	b = append(b, deviceType...)
	b = append(b, '_')
	return appendSessionIDTime(b, startMs)
}

// appendSessionIDTime appends startMs as SessionIDTimeLayout ("20060102T150405.000Z") without parsing the
// layout: session ids are made for most events of a busy stream, and AppendFormat was a tenth of the
// processing core's CPU time.
func appendSessionIDTime(b []byte, startMs int64) []byte {
	t := time.UnixMilli(startMs).UTC()
	y, mo, d := t.Date()
	h, mi, sec := t.Clock()
	ms := int(startMs % 1000)
	if ms < 0 {
		ms += 1000
	}
	b = appendDigits(b, y, 4)
	b = appendDigits(b, int(mo), 2)
	b = appendDigits(b, d, 2)
	b = append(b, 'T')
	b = appendDigits(b, h, 2)
	b = appendDigits(b, mi, 2)
	b = appendDigits(b, sec, 2)
	b = append(b, '.')
	b = appendDigits(b, ms, 3)
	return append(b, 'Z')
}

// appendDigits appends v (0 ≤ v) zero-padded to width digits.
func appendDigits(b []byte, v, width int) []byte {
	var buf [20]byte
	i := len(buf)
	for v > 0 || width > 0 {
		i--
		buf[i] = byte('0' + v%10)
		v /= 10
		width--
	}
	return append(b, buf[i:]...)
}

// SessionTime returns the "HH:mm:ss" (UTC) of startMs, the lab's
// session_time column.
func SessionTime(startMs int64) string {
	return string(appendSessionTime(make([]byte, 0, len(SessionTimeLayout)), startMs))
}

func appendSessionTime(b []byte, startMs int64) []byte {
	h, m, s := time.UnixMilli(startMs).UTC().Clock()
	b = appendDigits(b, h, 2)
	b = append(b, ':')
	b = appendDigits(b, m, 2)
	b = append(b, ':')
	return appendDigits(b, s, 2)
}

// NewSession returns the session opened by an event of userID on deviceType
// at startMs: SessionID, SessionTime, StartMs and LastEventMs filled,
// EventCount 1, UpdatedMs 0 (the writer sets it). An empty deviceType
// becomes [UnknownDeviceType]. SessionID, DeviceType and SessionTime share
// one new string: a session that outlives the event keeps none of the
// event's decoded strings alive, and costs the collector one object.
func NewSession(userID, deviceType string, startMs int64) Session {
	if deviceType == "" {
		deviceType = UnknownDeviceType
	}
	b := make([]byte, 0, len(userID)+len(deviceType)+2+len(SessionIDTimeLayout)+len(SessionTimeLayout))
	b = appendSessionID(b, userID, deviceType, startMs)
	n := len(b)
	all := string(appendSessionTime(b, startMs))
	return Session{
		SessionID:   all[:n],
		UserID:      userID,
		DeviceType:  all[len(userID)+1 : len(userID)+1+len(deviceType)],
		SessionTime: all[n:],
		StartMs:     startMs,
		LastEventMs: startMs,
		EventCount:  1,
	}
}
