package retry

import (
	"context"
	"errors"
	"strings"

	"github.com/aws/smithy-go"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/redis/go-redis/v9"
)

// permanentError marks an error as permanent whatever its kind; see Permanent.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent returns err marked so that IsPermanent reports true for it and for any error wrapping it; nil
// stays nil. Use it for failures the classifier cannot know are final (a malformed stored value, say).
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// AWS error codes that repeat on every attempt (smithy.APIError.ErrorCode), across Kinesis, DynamoDB, S3,
// STS and KMS.
var permanentAWSCodes = map[string]bool{
	"ResourceNotFoundException": true,
	"AccessDeniedException":     true, "AccessDenied": true, "UnauthorizedOperation": true,
	"ValidationException": true, "ValidationError": true, "InvalidArgumentException": true, "InvalidParameterException": true,
	"SerializationException": true, "UnrecognizedClientException": true, "InvalidSignatureException": true,
	"SignatureDoesNotMatch": true, "InvalidAccessKeyId": true, "IncompleteSignature": true, "MissingAuthenticationToken": true,
	"ExpiredTokenException": true, "ExpiredToken": true, "InvalidClientTokenId": true,
	"NoSuchBucket": true, "NoSuchKey": true, "InvalidBucketName": true, "EntityTooLarge": true,
	"KMSAccessDeniedException": true, "KMSDisabledException": true, "KMSInvalidStateException": true,
	"KMSNotFoundException": true, "KMSOptInRequired": true, "KMSInvalidKeyUsageException": true,
}

// AWS error codes of throttling and overload: always transient, whatever fault the API reports.
var transientAWSCodes = map[string]bool{
	"ThrottlingException": true, "Throttling": true, "ThrottledException": true, "RequestLimitExceeded": true,
	"ProvisionedThroughputExceededException": true, "LimitExceededException": true, "RequestThrottled": true,
	"RequestThrottledException": true, "TooManyRequestsException": true, "SlowDown": true, "KMSThrottlingException": true,
	"TransactionInProgressException": true, "ResourceInUseException": true, "InternalServerError": true,
	"InternalFailure": true, "ServiceUnavailable": true, "ServiceUnavailableException": true, "RequestTimeout": true,
	"RequestTimeoutException": true, "InternalError": true,
}

// Redis reply prefixes that say the server is busy or changing role: transient. Every other error reply
// (ERR, WRONGTYPE, NOSCRIPT after a failed load, NOPERM, NOAUTH, WRONGPASS, a script's own error…) repeats.
var transientRedisPrefixes = []string{"LOADING", "BUSY", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN", "READONLY", "MOVED", "ASK", "OOM", "NOREPLICAS", "MAXCLIENTS"}

// IsPermanent reports whether err will repeat on every attempt, so retrying it is pointless: an error
// marked with Permanent; an AWS API error whose code names a missing resource, a denied permission or a
// rejected request, or any other client fault that is not throttling; a Redis error reply other than a
// busy or failover one (a Lua script error among them); a PostgreSQL error of syntax, access, a missing
// object or failed authentication. Context cancellation is not permanent (the caller's context ended: it
// is not the server's answer). Unknown errors, network errors and timeouts are transient. nil is not
// permanent.
func IsPermanent(err error) bool {
	if err == nil {
		return false
	}
	var p permanentError
	if errors.As(err, &p) {
		return true
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		code := api.ErrorCode()
		switch {
		case transientAWSCodes[code]:
			return false
		case permanentAWSCodes[code], strings.HasPrefix(code, "KMS") && code != "KMSThrottlingException":
			return true
		}
		return api.ErrorFault() == smithy.FaultClient
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pgPermanent(pg.Code)
	}
	var rerr redis.Error
	if errors.As(err, &rerr) && !errors.Is(err, redis.Nil) {
		msg := rerr.Error()
		for _, p := range transientRedisPrefixes {
			if strings.HasPrefix(msg, p) {
				return false
			}
		}
		return true
	}
	return false
}

// pgPermanent classifies a PostgreSQL SQLSTATE: syntax or access rule violations (42), invalid
// authorization (28), a missing database (3D), a missing schema (3F), data exceptions (22) and integrity
// violations (23) repeat; connection exceptions (08), transaction rollbacks (40), insufficient resources
// (53), operator intervention (57) and everything else are transient.
func pgPermanent(code string) bool {
	if len(code) < 2 {
		return false
	}
	switch code[:2] {
	case "42", "28", "3D", "3F", "22", "23":
		return true
	}
	return false
}
