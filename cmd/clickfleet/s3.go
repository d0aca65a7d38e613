package main

import (
	"os"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// newS3 returns an S3 client for the SDK configuration. pathStyle is the --s3-path-style setting: "auto"
// uses path-style addressing (http://host/bucket/key) when a custom S3 endpoint is configured
// (AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL: local servers and LocalStack have no per-bucket host names)
// and virtual-hosted style on AWS; "true" or "false" force it.
func newS3(cfg aws.Config, pathStyle string) (*s3.Client, error) {
	var use bool
	switch pathStyle {
	case "auto", "":
		use = os.Getenv("AWS_ENDPOINT_URL_S3") != "" || os.Getenv("AWS_ENDPOINT_URL") != ""
	default:
		b, err := strconv.ParseBool(pathStyle)
		if err != nil {
			return nil, usagef("--s3-path-style (CLICKFLEET_S3_PATH_STYLE) must be auto, true or false, not %q", pathStyle)
		}
		use = b
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = use }), nil
}
