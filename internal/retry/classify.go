package retry

import (
	"context"
	"errors"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsretry "github.com/aws/aws-sdk-go-v2/aws/retry"
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

// permanentAWSCodes are the AWS error codes (smithy.APIError.ErrorCode) that repeat on every attempt of
// the same call, across the APIs clickfleet calls (Kinesis, DynamoDB, S3, CloudWatch, STS, and KMS behind
// Kinesis): the only AWS errors IsPermanent reports, unless the SDK calls the answer retryable. A code
// not listed here is transient, even when the service models it as a client fault: a new or unexpected
// code is retried (and logged by the caller's retry loop) rather than stopping a process that a retry
// could keep going.
var permanentAWSCodes = map[string]bool{
	// A missing resource.
	"ResourceNotFoundException": true, "ResourceNotFound": true, "TableNotFoundException": true, "IndexNotFoundException": true,
	"NoSuchBucket": true, "NoSuchKey": true, "NoSuchUpload": true, "NotFound": true, "DashboardNotFoundError": true,
	// A denied or unauthenticated call.
	"AccessDeniedException": true, "AccessDenied": true, "UnauthorizedOperation": true, "UnrecognizedClientException": true,
	"InvalidSignatureException": true, "SignatureDoesNotMatch": true, "InvalidAccessKeyId": true, "IncompleteSignature": true,
	"MissingAuthenticationToken": true, "ExpiredTokenException": true, "ExpiredToken": true, "InvalidClientTokenId": true,
	// A rejected request.
	"ValidationException": true, "ValidationError": true, "InvalidArgumentException": true, "InvalidParameterException": true,
	"InvalidParameterValueException": true, "InvalidParameterCombinationException": true, "MissingRequiredParameterException": true,
	"SerializationException": true, "InvalidBucketName": true, "EntityTooLarge": true, "InvalidRequest": true,
	"InvalidWriteOffset": true, "TooManyParts": true, "EncryptionTypeMismatch": true, "InvalidObjectState": true,
	"InvalidNextToken": true, "InvalidFormatFault": true, "DashboardInvalidInputError": true, "DryRunOperationException": true,
	// A condition or state that the same call meets again.
	"ConditionalCheckFailedException": true, "TransactionCanceledException": true, "ItemCollectionSizeLimitExceededException": true,
	"DuplicateItemException": true, "IdempotentParameterMismatchException": true, "IdempotencyParameterMismatch": true,
	"TableAlreadyExistsException": true, "BucketAlreadyExists": true, "BucketAlreadyOwnedByYou": true,
	"ExpiredIteratorException": true, "ExpiredNextTokenException": true,
	// A KMS key that cannot be used (KMSThrottlingException is transient).
	"KMSAccessDeniedException": true, "KMSDisabledException": true, "KMSInvalidStateException": true, "KMSNotFoundException": true,
	"KMSOptInRequired": true, "KMSInvalidKeyUsageException": true,
	"KmsAccessDeniedException": true, "KmsKeyDisabledException": true, "KmsKeyNotFoundException": true,
}

// sdkRetryables is the SDK's standard retryer's own judgement: connection errors, HTTP 429 (unmodeled),
// 500, 502, 503 and 504, its throttling codes (ThrottlingException, ProvisionedThroughputExceededException,
// LimitExceededException, SlowDown, …) and its timeout codes (RequestTimeout…).
var sdkRetryables = awsretry.IsErrorRetryables(awsretry.DefaultRetryables)

// Redis reply prefixes that say the server is busy or changing role: transient. Every other error reply
// (ERR, WRONGTYPE, NOSCRIPT after a failed load, NOPERM, NOAUTH, WRONGPASS, a script's own error…) repeats.
var transientRedisPrefixes = []string{"LOADING", "BUSY", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN", "READONLY", "MOVED", "ASK", "OOM", "NOREPLICAS", "MAXCLIENTS"}

// IsPermanent reports whether err will repeat on every attempt, so retrying it is pointless: an error
// marked with Permanent; an AWS API error whose code is in the explicit list of permanent codes (a
// missing resource, a denied permission, a rejected request, a failed condition, an unusable KMS key)
// unless the SDK's standard retryer calls it retryable (throttling, timeouts, 429 and 5xx answers); a
// Redis error reply other than a busy or failover one (a Lua script error among them); a PostgreSQL error
// of syntax, access, a missing object or failed authentication. Context cancellation is not permanent
// (the caller's context ended: it is not the server's answer). Every other AWS error is transient,
// client faults too — S3's 409 ConditionalRequestConflict (two conditional writes raced: retry), a
// DynamoDB TransactionConflictException, a code nobody listed — and so are unknown errors, network errors
// and timeouts. nil is not permanent.
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
		return awsPermanent(err, api.ErrorCode())
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

// awsPermanent classifies an AWS API error with code: retryable for the SDK, transient; else permanent
// only when listed.
func awsPermanent(err error, code string) bool {
	if sdkRetryables.IsErrorRetryable(err) == aws.TrueTernary {
		return false
	}
	return permanentAWSCodes[code]
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
