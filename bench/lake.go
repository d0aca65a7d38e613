package bench

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/parquet-go/parquet-go"

	"github.com/clickfleet/clickfleet/internal/provision"
	"github.com/clickfleet/clickfleet/lake/archive"
)

// S3API is the part of the S3 client the archive drain uses.
type S3API interface {
	archive.S3API
	provision.S3API
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, opts ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, opts ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
	DeleteBucket(ctx context.Context, in *s3.DeleteBucketInput, opts ...func(*s3.Options)) (*s3.DeleteBucketOutput, error)
}

// measureLake reads every object of the drain's bucket back: raw lines and input bytes, Parquet rows and
// bytes; it fails unless every record is in exactly one raw line and one Parquet row (by count).
func measureLake(ctx context.Context, api S3API, f *ArchiveFigures, records int64) error {
	var token *string
	for {
		out, err := api.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(f.Bucket), ContinuationToken: token})
		if err != nil {
			return fmt.Errorf("list the lake: %w", err)
		}
		for _, o := range out.Contents {
			g, err := api.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(f.Bucket), Key: o.Key})
			if err != nil {
				return err
			}
			b, err := io.ReadAll(g.Body)
			g.Body.Close()
			if err != nil {
				return err
			}
			f.Objects++
			switch key := aws.ToString(o.Key); {
			case strings.HasPrefix(key, "raw/"):
				f.RawBytes += int64(len(b))
				zr, err := gzip.NewReader(bytes.NewReader(b))
				if err != nil {
					return fmt.Errorf("%s: %w", key, err)
				}
				sc := bufio.NewScanner(zr)
				sc.Buffer(make([]byte, 1<<20), 4<<20)
				for sc.Scan() {
					f.RawLines++
					f.InputBytes += int64(len(sc.Bytes()))
				}
				if err := sc.Err(); err != nil {
					return fmt.Errorf("%s: %w", key, err)
				}
			case strings.HasPrefix(key, "events/"):
				f.ParquetBytes += int64(len(b))
				pf, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)))
				if err != nil {
					return fmt.Errorf("%s: %w", key, err)
				}
				f.ParquetRows += pf.NumRows()
			}
		}
		if !aws.ToBool(out.IsTruncated) {
			break
		}
		token = out.NextContinuationToken
	}
	if f.RawLines != records || f.ParquetRows != records {
		return fmt.Errorf("the lake holds %d raw lines and %d Parquet rows for %d records", f.RawLines, f.ParquetRows, records)
	}
	if f.InputBytes > 0 {
		f.ParquetVsRaw = float64(f.ParquetBytes) / float64(f.InputBytes)
	}
	return nil
}
