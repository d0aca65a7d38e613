// Package testenv connects integration tests to the real servers of the local stack (deploy/local/stack).
//
// Each accessor reads the endpoint the stack exports (`eval "$(deploy/local/stack env)"`), probes the
// server once, and returns a client. When an endpoint is not configured the test is skipped with the
// reason — unless CLICKFLEET_REQUIRE_STACK=1 (set by `make test`), where it fails naming the missing
// server. A configured server that does not answer always fails the test. It is for tests only.
package testenv
