package lakegen

import (
	"context"
	"io"
	"os"
	"path/filepath"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// DirS3 stands in for S3 with a directory: an object is the file Root/<bucket>/<key>. It implements
// archive.S3API (PutObject, HeadObject, HeadBucket) without metadata or conditions, for generating large
// lakes quickly. Safe for concurrent use.
type DirS3 struct {
	Root string
}

// Path returns the file of bucket/key.
func (d DirS3) Path(bucket, key string) string {
	return filepath.Join(d.Root, bucket, filepath.FromSlash(key))
}

// PutObject writes the body to a temporary file and renames it into place.
func (d DirS3) PutObject(_ context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	p := d.Path(*in.Bucket, *in.Key)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".put-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	if _, err := io.Copy(f, in.Body); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	return &s3.PutObjectOutput{}, os.Rename(f.Name(), p)
}

// HeadObject answers NotFound for a missing file.
func (d DirS3) HeadObject(_ context.Context, in *s3.HeadObjectInput, _ ...func(*s3.Options)) (*s3.HeadObjectOutput, error) {
	if _, err := os.Stat(d.Path(*in.Bucket, *in.Key)); err != nil {
		return nil, &smithy.GenericAPIError{Code: "NotFound", Message: err.Error()}
	}
	return &s3.HeadObjectOutput{Metadata: map[string]string{}}, nil
}

// HeadBucket answers NoSuchBucket for a missing directory.
func (d DirS3) HeadBucket(_ context.Context, in *s3.HeadBucketInput, _ ...func(*s3.Options)) (*s3.HeadBucketOutput, error) {
	if _, err := os.Stat(filepath.Join(d.Root, *in.Bucket)); err != nil {
		return nil, &smithy.GenericAPIError{Code: "NoSuchBucket", Message: err.Error()}
	}
	return &s3.HeadBucketOutput{}, nil
}
