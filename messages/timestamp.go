package messages

// Sane event-time range: [2000-01-01T00:00:00Z, 2101-01-01T00:00:00Z).
const (
	minEventTimeMs = 946684800000
	maxEventTimeMs = 4133980800000 // exclusive
)

// TimeInRange reports whether ms (Unix milliseconds) falls in the years
// 2000–2100 UTC, the range [Decode] accepts for event timestamps.
func TimeInRange(ms int64) bool { return ms >= minEventTimeMs && ms < maxEventTimeMs }

// ParseTimeMs parses a POC timestamp text as [Decode] accepts it and returns Unix milliseconds, the
// fraction truncated; ok is false for any other text. It does not check the range (see [TimeInRange]).
func ParseTimeMs(s string) (ms int64, ok bool) { return parseTimeMs(s) }

// parseTimeMs parses a POC timestamp and returns Unix milliseconds (the
// fraction truncated). Accepted: "YYYY-MM-DD hh:mm:ss[.f]" (UTC, the seed's
// format), the same with 'T' as separator, and either followed by a zone
// "Z" or "±hh:mm" (RFC 3339). The fraction has 1 to 9 digits.
func parseTimeMs(s string) (int64, bool) {
	if len(s) < 19 {
		return 0, false
	}
	num := func(i, n int) (int, bool) {
		v := 0
		for j := i; j < i+n; j++ {
			c := s[j]
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + int(c-'0')
		}
		return v, true
	}
	year, ok1 := num(0, 4)
	month, ok2 := num(5, 2)
	day, ok3 := num(8, 2)
	hour, ok4 := num(11, 2)
	minute, ok5 := num(14, 2)
	sec, ok6 := num(17, 2)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) ||
		s[4] != '-' || s[7] != '-' || s[13] != ':' || s[16] != ':' ||
		(s[10] != ' ' && s[10] != 'T' && s[10] != 't') {
		return 0, false
	}
	if month < 1 || month > 12 || day < 1 || day > daysIn(year, month) ||
		hour > 23 || minute > 59 || sec > 59 {
		return 0, false
	}
	i := 19
	ms := 0
	if i < len(s) && s[i] == '.' {
		i++
		n := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			if n < 3 {
				ms = ms*10 + int(s[i]-'0')
			}
			n++
			i++
		}
		if n == 0 || n > 9 {
			return 0, false
		}
		for ; n < 3; n++ {
			ms *= 10
		}
	}
	offset := 0 // seconds east of UTC
	if i < len(s) {
		switch s[i] {
		case 'Z', 'z':
			i++
		case '+', '-':
			if len(s)-i != 6 || s[i+3] != ':' {
				return 0, false
			}
			oh, okh := num(i+1, 2)
			om, okm := num(i+4, 2)
			if !okh || !okm || oh > 23 || om > 59 {
				return 0, false
			}
			offset = oh*3600 + om*60
			if s[i] == '-' {
				offset = -offset
			}
			i += 6
		default:
			return 0, false
		}
	}
	if i != len(s) {
		return 0, false
	}
	secs := daysFromCivil(year, month, day)*86400 + int64(hour*3600+minute*60+sec-offset)
	return secs*1000 + int64(ms), true
}

func isLeap(y int) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }

func daysIn(y, m int) int {
	switch m {
	case 2:
		if isLeap(y) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	default:
		return 31
	}
}

// daysFromCivil returns the days since 1970-01-01 of a proleptic Gregorian
// date with 0 ≤ y ≤ 9999 (H. Hinnant's algorithm).
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y
	if era < 0 {
		era -= 399
	}
	era /= 400
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}
