//go:build !clickfleet_crashpoints

package main

import "github.com/aws/aws-sdk-go-v2/aws"

// recordCalls does nothing: only test builds (the clickfleet_crashpoints tag) can record AWS calls.
func recordCalls(*aws.Config) error { return nil }
