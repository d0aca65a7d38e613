// Command kinesis-efo-proxy serves package efoproxy's Proxy in front of kinesis-mock's TLS port, so that
// aws-sdk-go-v2's SubscribeToShard works against the local stack, and makes the certificate both serve
// with. The local stack runs it (deploy/local/stack up); it is a test-stack tool, not part of clickfleet.
//
//	kinesis-efo-proxy cert --dir DIR
//	kinesis-efo-proxy serve --listen 127.0.0.1:4573 --upstream https://127.0.0.1:4567 --cert-dir DIR [--end-after 0]
//
// cert writes DIR/cert.pem, DIR/key.pem and DIR/kinesis-mock.json unless they exist. serve answers on
// HTTPS (HTTP/2) with that certificate; its control paths are POST /-/end?consumer=NAME[&how=clean|reset]
// and GET /-/subscriptions?consumer=NAME. SIGTERM or SIGINT stops it; it exits 1 naming the flag when a
// setting is wrong, 2 on a bad command line.
package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/internal/efoproxy"
)

const usage = "usage: kinesis-efo-proxy cert --dir DIR | serve --listen ADDR --upstream URL --cert-dir DIR [--end-after D]"

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "cert":
		err = certCommand(os.Args[2:])
	case "serve":
		err = serveCommand(os.Args[2:])
	default:
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kinesis-efo-proxy:", err)
		os.Exit(1)
	}
}

func certCommand(args []string) error {
	fs := flag.NewFlagSet("cert", flag.ExitOnError)
	dir := fs.String("dir", "", "directory for cert.pem, key.pem and kinesis-mock.json (required)")
	_ = fs.Parse(args)
	if *dir == "" {
		return errors.New("--dir is required")
	}
	made, err := efoproxy.MakeCertificate(*dir)
	if err != nil {
		return fmt.Errorf("--dir %s: %w", *dir, err)
	}
	if made {
		fmt.Fprintf(os.Stderr, "kinesis-efo-proxy: certificate for 127.0.0.1 and localhost written to %s\n", *dir)
	}
	return nil
}

func serveCommand(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:4573", "address to serve HTTPS on")
	upstream := fs.String("upstream", "", "kinesis-mock's TLS endpoint, e.g. https://127.0.0.1:4567 (required)")
	certDir := fs.String("cert-dir", "", "directory holding cert.pem and key.pem (kinesis-efo-proxy cert; required)")
	endAfter := fs.Duration("end-after", 0, "end every subscription this long after it started (0: never)")
	_ = fs.Parse(args)
	log, err := zap.NewProduction()
	if err != nil {
		return fmt.Errorf("logger: %w", err)
	}
	defer func() { _ = log.Sync() }()
	if *certDir == "" {
		return errors.New("--cert-dir is required")
	}
	certFile, keyFile := filepath.Join(*certDir, efoproxy.CertFile), filepath.Join(*certDir, efoproxy.KeyFile)
	pem, err := os.ReadFile(certFile)
	if err != nil {
		return fmt.Errorf("--cert-dir: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("--cert-dir: no certificate in %s", certFile)
	}
	p, err := efoproxy.New(efoproxy.Config{Upstream: *upstream, RootCAs: pool, EndAfter: *endAfter, Logger: log})
	if err != nil {
		return fmt.Errorf("--upstream: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serve(ctx, log, p, *listen, certFile, keyFile)
}

// serve answers on listen until ctx ends.
func serve(ctx context.Context, log *zap.Logger, p *efoproxy.Proxy, listen, certFile, keyFile string) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", listen, err)
	}
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 30 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.ServeTLS(ln, certFile, keyFile) }()
	log.Info("serving kinesis-mock's enhanced fan-out", zap.String("listen", ln.Addr().String()))
	select {
	case err := <-served:
		return fmt.Errorf("serving on %s: %w", listen, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close() // subscriptions stay open until their end: cut them
	}
	return nil
}
