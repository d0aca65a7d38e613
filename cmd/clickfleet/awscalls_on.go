//go:build clickfleet_crashpoints

package main

import (
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/clickfleet/clickfleet/internal/awscalls"
)

// recordCalls, in a test build, attaches the AWS call recorder when CLICKFLEET_AWS_CALL_LOG names a
// file, so that the IAM test can compare every call a command makes with its role in deploy/aws.
func recordCalls(cfg *aws.Config) error {
	path := os.Getenv(awscalls.Env)
	if path == "" {
		return nil
	}
	r, err := awscalls.Open(path)
	if err != nil {
		return err
	}
	r.Attach(cfg)
	return nil
}
