package provision

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// S3API is the part of the S3 client EnsureBucket uses; *s3.Client has it.
type S3API interface {
	HeadBucket(ctx context.Context, in *s3.HeadBucketInput, opts ...func(*s3.Options)) (*s3.HeadBucketOutput, error)
	CreateBucket(ctx context.Context, in *s3.CreateBucketInput, opts ...func(*s3.Options)) (*s3.CreateBucketOutput, error)
}

// EnsureBucket creates the bucket unless it exists (and is ours). created says whether it was made now.
func EnsureBucket(ctx context.Context, api S3API, name string) (created bool, err error) {
	if _, err := api.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(name)}); err == nil {
		return false, nil
	}
	_, err = api.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)})
	var api2 smithy.APIError
	if errors.As(err, &api2) && api2.ErrorCode() == "BucketAlreadyOwnedByYou" {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("create bucket %s: %w", name, err)
	}
	return true, nil
}
