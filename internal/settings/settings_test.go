package settings_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/clickfleet/clickfleet/internal/settings"
)

func TestError(t *testing.T) {
	errLib := errors.New("invalid lib configuration")
	err := fmt.Errorf("%w: %w", errLib, settings.Within("Lease", settings.Invalid("RenewInterval", "%s must be at most FailoverTime/2 (%s)", "6s", "5s")))
	var e *settings.Error
	if !errors.As(err, &e) || !errors.Is(err, settings.ErrInvalid) || !errors.Is(err, errLib) {
		t.Fatalf("%v: want an *Error, ErrInvalid and the library's sentinel", err)
	}
	if e.Field != "Lease.RenewInterval" || err.Error() != "invalid lib configuration: Lease.RenewInterval: 6s must be at most FailoverTime/2 (5s)" {
		t.Fatalf("field %q, message %q", e.Field, err)
	}
	field, reason, ok := e.Rename(map[string]string{"Lease.RenewInterval": "--renew-interval", "FailoverTime": "--failover-time"})
	if !ok || field != "--renew-interval" || reason != "6s must be at most --failover-time/2 (5s)" {
		t.Fatalf("Rename = %q, %q, %v", field, reason, ok)
	}
	if _, _, ok := e.Rename(map[string]string{}); ok {
		t.Fatal("Rename found a field that is not in the map")
	}
	plain := errors.New("plain")
	if settings.Within("X", plain) != plain {
		t.Fatal("Within changed an error that is not an *Error")
	}
}
