package ingest

import "net/http"

// cors sets the CORS headers for an allowed origin and answers preflight requests; it reports whether it
// answered.
func (s *Server) cors(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
	allowed := ""
	if origin != "" {
		for _, o := range s.cfg.CORSOrigins {
			if o == "*" {
				allowed = "*"
				break
			}
			if o == origin {
				allowed = origin
				break
			}
		}
	}
	h := w.Header()
	if allowed != "" {
		h.Set("Access-Control-Allow-Origin", allowed)
		if allowed != "*" {
			h.Add("Vary", "Origin")
		}
		h.Set("Access-Control-Expose-Headers", "Retry-After")
	}
	if r.Method != http.MethodOptions {
		return false
	}
	h.Set("Allow", "POST, OPTIONS")
	if preflight && allowed != "" {
		h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Content-Type, X-Api-Key")
		h.Set("Access-Control-Max-Age", "600")
	}
	w.WriteHeader(http.StatusNoContent)
	return true
}
