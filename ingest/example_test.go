package ingest_test

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/clickfleet/clickfleet/ingest"
)

// The HTTP front door on 127.0.0.1:8080, putting the events of POST /v1/events on "clickstream" for
// clients presenting the API key. SIGTERM drains the requests in flight.
func ExampleServer() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	aws, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg := ingest.DefaultConfig()
	if cfg.Keys, err = ingest.NewKeys([]string{"local-dev-key-0001"}); err != nil {
		fmt.Println(err)
		return
	}
	srv, err := ingest.New(cfg, kinesis.NewFromConfig(aws), ingest.Options{})
	if err != nil {
		fmt.Println(err) // a *settings.Error names the field
		return
	}
	if err := srv.Run(ctx); err != nil {
		fmt.Println(err)
	}
}
