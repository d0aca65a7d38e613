package ingest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/clickfleet/clickfleet/internal/settings"
)

func TestKeys(t *testing.T) {
	k, err := ReadKeys(strings.NewReader("# team keys\nmobile  secret-mobile-1\n\nsecret-web-0002\n"))
	if err != nil {
		t.Fatal(err)
	}
	env, err := NewKeys([]string{"env-key-0001", ""})
	if err != nil {
		t.Fatal(err)
	}
	k = k.Merge(env)
	for _, tc := range []struct {
		key, name string
		ok        bool
	}{
		{"secret-mobile-1", "mobile", true},
		{"secret-web-0002", "line-4", true},
		{"env-key-0001", "key-1", true},
		{"secret-mobile-", "", false},
		{"", "", false},
		{"mobile", "", false},
	} {
		_, name, ok := k.Lookup(tc.key)
		if ok != tc.ok || name != tc.name {
			t.Errorf("Lookup(%q) = %q, %v; want %q, %v", tc.key, name, ok, tc.name, tc.ok)
		}
	}
	for _, tc := range []struct{ name, file, want string }{
		{"short", "abc", "line 1: key is shorter than 8"},
		{"three words", "a b c", "line 1: want KEY or NAME KEY"},
		{"repeat", "k1 abcdefgh12\nk2 abcdefgh12", "line 2: key k2 repeats"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadKeys(strings.NewReader(tc.file))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v; want %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "abcdefgh12") {
				t.Fatalf("error shows the key: %v", err)
			}
		})
	}
}

func TestLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLimiter(10, 20, func() time.Time { return now })
	if ok, _ := l.admit(0); !ok {
		t.Fatal("full bucket refused")
	}
	l.take(0, 50) // a big request puts the bucket 30 in debt
	ok, wait := l.admit(0)
	if ok || wait != 3100*time.Millisecond {
		t.Fatalf("admit = %v, %s; want refused for 3.1s", ok, wait)
	}
	if ok, _ := l.admit(1); !ok {
		t.Fatal("another key is limited by the first one's bucket")
	}
	now = now.Add(3100 * time.Millisecond)
	if ok, _ := l.admit(0); !ok {
		t.Fatal("refused after the wait it announced")
	}
	now = now.Add(time.Hour)
	l.take(0, 20)
	if ok, _ := l.admit(0); ok {
		t.Fatal("bucket grew past its burst")
	}
}

func TestConfigValidate(t *testing.T) {
	keys, _ := NewKeys([]string{"abcdefgh12"})
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"defaults with a key", func(c *Config) {}, ""},
		{"no keys", func(c *Config) { c.Keys = nil }, "Keys"},
		{"anonymous", func(c *Config) { c.Keys, c.AllowAnonymous = nil, true }, ""},
		{"event bytes over Kinesis' limit", func(c *Config) { c.MaxEventBytes = 2 << 20 }, "MaxEventBytes"},
		{"request smaller than an event", func(c *Config) { c.MaxRequestBytes = 1000 }, "MaxRequestBytes"},
		{"batch records", func(c *Config) { c.MaxBatchRecords = 501 }, "MaxBatchRecords"},
		{"write timeout too short", func(c *Config) { c.WriteTimeout = time.Second }, "WriteTimeout"},
		{"bad origin", func(c *Config) { c.CORSOrigins = []string{"example.com"} }, "CORSOrigins"},
		{"errors stream", func(c *Config) { c.InvalidToErrors, c.ErrorStream = true, "" }, "ErrorStream"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			c.Keys = keys
			tc.mod(&c)
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var se *settings.Error
			if !errors.Is(err, ErrInvalidConfig) || !errors.As(err, &se) || se.Field != tc.want {
				t.Fatalf("err = %v; want a *settings.Error for field %s", err, tc.want)
			}
		})
	}
}
