package dashboard

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/lake/reconcile"
)

// Reconciliations gives the last reconciliation's result, as `clickfleet reconcile` stored it.
// Implementations must be safe for concurrent use.
type Reconciliations interface {
	// Latest returns the last result: an error wrapping reconcile.ErrNoResult when none is stored, a
	// *SourceError when the store cannot be read.
	Latest(ctx context.Context) (*reconcile.Result, error)
	// Location names where results are read from (s3://bucket/prefix/reconcile/latest.json).
	Location() string
}

// reconcile answers /api/reconcile: {"result": the last result or null, "location", "message"}; 503
// {"error","source","setting"} when the store is down.
func (s *Server) reconcile(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Reconciliations == nil {
		writeJSON(w, http.StatusOK, map[string]any{"result": nil, "message": "not configured"})
		return
	}
	loc := s.cfg.Reconciliations.Location()
	res, err := s.cfg.Reconciliations.Latest(r.Context())
	var se *SourceError
	switch {
	case errors.Is(err, reconcile.ErrNoResult):
		writeJSON(w, http.StatusOK, map[string]any{"result": nil, "location": loc,
			"message": fmt.Sprintf("no reconciliation has run: 'clickfleet reconcile --sessions-table TABLE' over this lake stores its result at %s", loc)})
	case errors.As(err, &se):
		s.log.Warn("the reconciliation result's store is down", zap.String("source", se.Source), zap.Error(se.Err))
		w.Header().Set("Retry-After", fmt.Sprint(int(s.cfg.RefreshInterval.Seconds())))
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": se.Error(), "source": se.Source, "setting": se.Setting, "location": loc})
	case err != nil:
		if r.Context().Err() != nil {
			return
		}
		s.log.Error("reading the last reconciliation failed", zap.Error(err))
		writeJSON(w, http.StatusInternalServerError, map[string]any{"error": err.Error(), "location": loc})
	default:
		writeJSON(w, http.StatusOK, map[string]any{"result": res, "location": loc})
	}
}
