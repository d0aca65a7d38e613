package clickgen

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clickfleet/clickfleet/enrich/geo"
)

func collect(t *testing.T, cfg Config, n int) []Event {
	t.Helper()
	src := newSource(cfg)
	evs := make([]Event, n)
	for i := range evs {
		ev, err := src.next()
		if err != nil {
			t.Fatal(err)
		}
		evs[i] = ev
	}
	return evs
}

func TestSourceIsReproducible(t *testing.T) {
	for _, p := range []Profile{ProfilePOC, ProfileLab} {
		t.Run(string(p), func(t *testing.T) {
			cfg := DefaultConfig(p)
			cfg.Start = time.Date(2021, 7, 12, 12, 0, 0, 0, time.UTC)
			a, b := collect(t, cfg, 200), collect(t, cfg, 200)
			for i := range a {
				if string(a[i].Data) != string(b[i].Data) || a[i].UserID != b[i].UserID {
					t.Fatalf("event %d differs with the same seed:\n%s\n%s", i, a[i].Data, b[i].Data)
				}
			}
			cfg.Seed = 2
			c := collect(t, cfg, 200)
			same := 0
			for i := range a {
				if string(a[i].Data) == string(c[i].Data) {
					same++
				}
			}
			if same == len(a) {
				t.Fatal("seed 2 made the same events as seed 1")
			}
		})
	}
}

func TestLabPacing(t *testing.T) {
	cfg := DefaultConfig(ProfileLab)
	cfg.Start = time.Date(2021, 7, 12, 12, 0, 0, 0, time.UTC)
	evs := collect(t, cfg, 181)
	users := map[string]bool{}
	for i, ev := range evs {
		var rec labRecord
		if err := json.Unmarshal(ev.Data, &rec); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		users[rec.UserID] = true
		if rec.UserID != ev.UserID {
			t.Fatalf("event %d: partition key %q, user_id %q", i, ev.UserID, rec.UserID)
		}
		ms, err := strconv.ParseInt(rec.EventTimestamp, 10, 64)
		if err != nil {
			t.Fatalf("event %d: event_timestamp %q: %v", i, rec.EventTimestamp, err)
		}
		if want := cfg.Start.Add(ev.At).UnixMilli(); ms != want {
			t.Fatalf("event %d: event_timestamp %d, want %d", i, ms, want)
		}
		if i == 0 {
			continue
		}
		gap := ev.At - evs[i-1].At
		want := 2 * time.Second
		if i%60 == 0 { // after clicks 60, 120, 180 (counted from 1)
			want = 15 * time.Second
		}
		if gap != want {
			t.Fatalf("gap before event %d (1-based %d) = %s, want %s", i, i+1, gap, want)
		}
	}
	if len(users) != 3 {
		t.Fatalf("users seen = %v, want user1..user3", users)
	}
}

func TestPOCEventsHavePublicIPsAndFields(t *testing.T) {
	cfg := DefaultConfig(ProfilePOC)
	cfg.Users = 50
	ipOf := map[string]string{}
	for i, ev := range collect(t, cfg, 500) {
		var rec pocRecord
		if err := json.Unmarshal(ev.Data, &rec); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		a, err := netip.ParseAddr(rec.UserIP)
		if err != nil || !geo.IsPublic(a) {
			t.Fatalf("event %d: user_ip %q is not a public address", i, rec.UserIP)
		}
		if prev, ok := ipOf[rec.UserID]; ok && prev != rec.UserIP {
			t.Fatalf("user %s changed IP from %s to %s", rec.UserID, prev, rec.UserIP)
		}
		ipOf[rec.UserID] = rec.UserIP
		if _, err := time.Parse(pocTimeLayout, rec.Timestamp); err != nil {
			t.Fatalf("event %d: timestamp %q: %v", i, rec.Timestamp, err)
		}
		if p := rec.AdditionalData.PercentViewed; p < 0 || p > 100 {
			t.Fatalf("event %d: percent_viewed %v", i, p)
		}
		if len(rec.ClickID) != 32 || len(rec.PixelID) != 10 {
			t.Fatalf("event %d: click_id %q pixel_id %q", i, rec.ClickID, rec.PixelID)
		}
	}
}

// flakySink fails whole calls and single entries on a fixed pattern and records what it stored.
type flakySink struct {
	mu     sync.Mutex
	calls  int
	stored []Event
}

func (s *flakySink) Put(_ context.Context, batch []Event) ([]Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.calls%3 == 0 {
		return nil, errors.New("connection reset")
	}
	var failed []Event
	for i, ev := range batch {
		if (i+s.calls)%4 == 0 {
			failed = append(failed, ev)
			continue
		}
		s.stored = append(s.stored, ev)
	}
	return failed, nil
}

func TestRunRetriesUntilEverythingIsStoredOnce(t *testing.T) {
	cfg := DefaultConfig(ProfilePOC)
	cfg.Count, cfg.Rate, cfg.TimeScale, cfg.BatchSize, cfg.RetryBackoff = 1000, 0, 0, 64, time.Millisecond
	cfg.Start = time.Date(2021, 7, 12, 12, 0, 0, 0, time.UTC)
	sink := &flakySink{}
	st, err := Run(context.Background(), cfg, sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Sent != 1000 || st.Generated != 1000 || len(sink.stored) != 1000 {
		t.Fatalf("sent %d generated %d stored %d, want 1000 each", st.Sent, st.Generated, len(sink.stored))
	}
	if st.Retried == 0 || st.Failures == 0 {
		t.Fatalf("the sink failed calls and entries, but stats say retried %d failures %d", st.Retried, st.Failures)
	}
	want := collect(t, cfg, 1000)
	seen := map[string]int{}
	for _, ev := range sink.stored {
		seen[string(ev.Data)]++
	}
	for i, ev := range want {
		if seen[string(ev.Data)] != 1 {
			t.Fatalf("event %d stored %d times, want once", i, seen[string(ev.Data)])
		}
	}
}

func TestRunStopsAtDurationAndStoresWhatItMade(t *testing.T) {
	cfg := DefaultConfig(ProfileLab)
	cfg.Count, cfg.Duration, cfg.TimeScale, cfg.RetryBackoff = 0, 300*time.Millisecond, 0.01, time.Millisecond // one click per 20 ms
	sink := &flakySink{}
	st, err := Run(context.Background(), cfg, sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Generated == 0 || st.Sent != st.Generated || int64(len(sink.stored)) != st.Generated {
		t.Fatalf("generated %d sent %d stored %d: every generated event must be stored", st.Generated, st.Sent, len(sink.stored))
	}
	// 300 ms at 20 ms per click is about 15 clicks; far fewer or far more means pacing is ignored.
	if st.Generated > 100 {
		t.Fatalf("generated %d events in 300 ms at one per 20 ms", st.Generated)
	}
}

func TestRunReportsUnstoredEventsWhenCancelled(t *testing.T) {
	cfg := DefaultConfig(ProfilePOC)
	cfg.Count, cfg.TimeScale = 10, 0
	ctx, cancel := context.WithCancel(context.Background())
	sink := sinkFunc(func(ctx context.Context, batch []Event) ([]Event, error) {
		cancel()
		return nil, ctx.Err()
	})
	st, err := Run(ctx, cfg, sink, nil)
	if err == nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want a cancellation naming the unstored events", err)
	}
	if st.Sent != 0 {
		t.Fatalf("sent = %d", st.Sent)
	}
}

type sinkFunc func(context.Context, []Event) ([]Event, error)

func (f sinkFunc) Put(ctx context.Context, b []Event) ([]Event, error) { return f(ctx, b) }

func TestConfigValidateNamesTheSetting(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"profile", func(c *Config) { c.Profile = "x" }, "profile"},
		{"users", func(c *Config) { c.Users = 0 }, "users"},
		{"no end", func(c *Config) { c.Count, c.Duration = 0, 0 }, "count or duration"},
		{"batch", func(c *Config) { c.BatchSize = 501 }, "batch size"},
		{"scale", func(c *Config) { c.TimeScale = -1 }, "time-scale"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig(ProfilePOC)
			tc.mod(&c)
			err := c.Validate()
			if err == nil || !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an ErrInvalidConfig naming %q", err, tc.want)
			}
		})
	}
}
