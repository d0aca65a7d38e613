package messages

import (
	"strconv"
	"testing"
	"time"
)

// The hand-written formatters agree with the layouts they replace, also before 1970 and around leap days.
func TestSessionTimeFormatsMatchLayouts(t *testing.T) {
	for _, ms := range []int64{0, 1, 999, 1626091318732, 951782399999, 951782400000, -1, -86400001, 4102444799999, 1795306411131} {
		t.Run(strconv.FormatInt(ms, 10), func(t *testing.T) {
			tm := time.UnixMilli(ms).UTC()
			if got, want := SessionID("u", "d", ms), "u_d_"+tm.Format(SessionIDTimeLayout); got != want {
				t.Fatalf("SessionID = %s, want %s", got, want)
			}
			if got, want := SessionTime(ms), tm.Format(SessionTimeLayout); got != want {
				t.Fatalf("SessionTime = %s, want %s", got, want)
			}
		})
	}
}
