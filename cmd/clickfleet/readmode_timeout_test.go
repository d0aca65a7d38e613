package main

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
)

// TestEFOClientDoesNotWaitForeverForAnAnswer: an efo endpoint that accepts connections and reads requests
// but never answers fails each call within the response header timeout (and the SDK's retries), instead
// of holding the caller until its own context ends.
func TestEFOClientDoesNotWaitForeverForAnAnswer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { // read whatever comes, answer nothing
				defer c.Close()
				buf := make([]byte, 4096)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
				}
			}()
		}
	}()
	prev := efoResponseHeaderTimeout
	efoResponseHeaderTimeout = 300 * time.Millisecond
	t.Cleanup(func() { efoResponseHeaderTimeout = prev })
	awsCfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("x", "y", "")}
	c := efoClient(awsCfg, "http://"+ln.Addr().String())

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	_, err = c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("s")})
	if err == nil {
		t.Fatal("DescribeStreamSummary against an endpoint that never answers succeeded")
	}
	if ctx.Err() != nil {
		t.Fatalf("DescribeStreamSummary waited %v, until the caller's own deadline: %v", time.Since(start).Round(time.Millisecond), err)
	}
	t.Logf("failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
}
