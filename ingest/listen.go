package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"

	"go.uber.org/zap"
)

// Run listens on cfg.Listen and serves until ctx ends (see [Server.Serve]).
func (s *Server) Run(ctx context.Context) error {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("ingest listen on %s: %w", s.cfg.Listen, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves HTTP on ln until ctx ends, then shuts down gracefully: /readyz answers 503, no new
// connection is accepted, requests in flight finish (their events are stored or reported failed), and
// the batchers send what they hold. When the drain takes longer than ShutdownTimeout, connections are
// closed and PutRecords calls cancelled, and Serve returns an error saying so. Every goroutine Serve
// started has ended when it returns; it closes ln. It returns nil after a clean stop.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if !s.served.CompareAndSwap(false, true) {
		ln.Close()
		return ErrServed
	}
	if s.cfg.MaxConnections > 0 {
		ln = newLimitListener(ln, s.cfg.MaxConnections)
	}
	sendCtx, hardStop := context.WithCancel(context.WithoutCancel(ctx))
	defer hardStop()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, b := range []*batcher{s.events, s.errs} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.run(stop, sendCtx)
		}()
	}
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    s.cfg.MaxHeaderBytes,
		ErrorLog:          zap.NewStdLog(s.log.Named("http").WithOptions(zap.IncreaseLevel(zap.InfoLevel))),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	s.log.Info("serving", zap.String("addr", ln.Addr().String()), zap.String("stream", s.cfg.Stream),
		zap.Int("keys", s.cfg.Keys.Len()), zap.Bool("invalid_to_errors", s.cfg.InvalidToErrors))

	var result error
	select {
	case err := <-serveErr:
		result = fmt.Errorf("ingest serve: %w", err)
		srv.Close()
	case <-ctx.Done():
		s.stopping.Store(true)
		s.log.Info("shutting down: draining requests in flight")
		dctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
		err := srv.Shutdown(dctx)
		cancel()
		if err != nil {
			result = fmt.Errorf("ingest shutdown: requests still in flight after %s: %w", s.cfg.ShutdownTimeout, err)
			hardStop()
			srv.Close()
		}
		if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) && result == nil {
			result = fmt.Errorf("ingest serve: %w", err)
		}
	}
	s.stopping.Store(true)
	close(stop)
	wg.Wait()
	s.log.Info("stopped")
	return result
}

// limitListener accepts at most n connections at a time; Accept waits for a free slot.
type limitListener struct {
	net.Listener
	sem    chan struct{}
	closed chan struct{}
	close  func()
}

func newLimitListener(ln net.Listener, n int) net.Listener {
	l := &limitListener{Listener: ln, sem: make(chan struct{}, n), closed: make(chan struct{})}
	l.close = sync.OnceFunc(func() { close(l.closed) })
	return l
}

func (l *limitListener) Close() error {
	l.close()
	return l.Listener.Close()
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.closed:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: sync.OnceFunc(func() { <-l.sem })}, nil
}

type limitConn struct {
	net.Conn
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}

var _ io.Closer = (*limitConn)(nil)
