// Package efoproxy makes kinesis-mock's enhanced fan-out usable by aws-sdk-go-v2 on the local stack, and
// makes a subscription's end testable. It is a test-stack tool (deploy/local/stack runs it as
// cmd/kinesis-efo-proxy), never part of clickfleet's processes.
//
// kinesis-mock (npm kinesis-local 0.6.2) serves SubscribeToShard over HTTP/2 on its TLS port, but not as
// Kinesis does: it never sends the `initial-response` event the SDK reads first ("deserialize initial
// response: expected initial-response"), and it refuses a second subscription to a shard with HTTP 200
// and an exception as the first event, where Kinesis answers HTTP 400. Proxy, a reverse proxy in front of
// that TLS port, fixes both: it writes `initial-response {}` before the first event, and turns an
// exception that comes first into the HTTP 400 JSON error Kinesis sends. Every other call passes through
// unchanged.
//
// Its control paths end subscriptions the way Kinesis does after five minutes (a clean end of the event
// stream) or the way a network failure does (a reset stream), at once for a consumer (POST
// /-/end?consumer=NAME) or after a set time for all (Config.EndAfter), so that a reader's resubscription
// is tested in seconds. GET /-/subscriptions?consumer=NAME counts subscriptions opened and open.
//
// MakeCertificate writes the certificate both serve with: one for 127.0.0.1 and localhost, the only one
// an SDK client needs to trust (AWS_CA_BUNDLE).
package efoproxy
