package reconcile

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	stypes "github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// ResultKey is where `clickfleet reconcile` keeps its last result, under the lake's prefix (the lake
// s3://clickfleet-lake/demo/ has it at s3://clickfleet-lake/demo/reconcile/latest.json), and where the
// dashboard reads it. Each run replaces it.
const ResultKey = "reconcile/latest.json"

// ErrNoResult: no reconciliation result is stored at the key.
var ErrNoResult = errors.New("reconcile: no result stored")

// S3API is the part of the S3 client Store and Load use; *s3.Client has it.
type S3API interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

// Store writes res as JSON to s3://bucket/key, replacing what is there.
func Store(ctx context.Context, api S3API, bucket, key string, res *Result) error {
	b, err := json.MarshalIndent(res, "", " ")
	if err != nil {
		return fmt.Errorf("reconcile: encode the result: %w", err)
	}
	_, err = api.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(b),
		ContentType: aws.String("application/json"), ContentLength: aws.Int64(int64(len(b)))})
	if err != nil {
		return fmt.Errorf("reconcile: store the result at s3://%s/%s: %w", bucket, key, err)
	}
	return nil
}

// MaxResultBytes bounds what Load reads: a result of that size lists tens of thousands of differences.
const MaxResultBytes = 32 << 20

// Load reads the result Store wrote at s3://bucket/key. It returns ErrNoResult (wrapped) when there is
// none, and other errors (the server, the bucket, a result that is not one) naming the object.
func Load(ctx context.Context, api S3API, bucket, key string) (*Result, error) {
	out, err := api.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		var nk *stypes.NoSuchKey
		if errors.As(err, &nk) {
			return nil, fmt.Errorf("%w at s3://%s/%s: run 'clickfleet reconcile'", ErrNoResult, bucket, key)
		}
		return nil, fmt.Errorf("reconcile: read s3://%s/%s: %w", bucket, key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(io.LimitReader(out.Body, MaxResultBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reconcile: read s3://%s/%s: %w", bucket, key, err)
	}
	if len(b) > MaxResultBytes {
		return nil, fmt.Errorf("reconcile: s3://%s/%s is over %d bytes", bucket, key, MaxResultBytes)
	}
	var res Result
	if err := json.Unmarshal(b, &res); err != nil {
		return nil, fmt.Errorf("reconcile: s3://%s/%s is not a reconciliation result: %w", bucket, key, err)
	}
	return &res, nil
}
