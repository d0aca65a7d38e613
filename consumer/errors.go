package consumer

import "fmt"

// ResourceError is a permanent failure (see retry.IsPermanent) on a resource that the worker or a
// processor needs: a missing stream or table, a denied permission. The worker stops on one; callers learn
// with errors.As which setting names the resource, to tell the user what to change.
type ResourceError struct {
	// Setting names the configuration field that names the resource: "Stream" and "Lease.Table" for the
	// worker's own, or a processor's field (e.g. "SessionsTable").
	Setting string
	// Kind is what the resource is ("stream", "lease table", "sessions table", …); Name its name.
	Kind, Name string
	// Err is the server's error.
	Err error
}

func (e *ResourceError) Error() string { return fmt.Sprintf("%s %s: %v", e.Kind, e.Name, e.Err) }
func (e *ResourceError) Unwrap() error { return e.Err }
