//go:build !clickfleet_crashpoints

package crashpoint

// At returns nil: a build without the clickfleet_crashpoints tag has no crash points.
func At(string) func() { return nil }
