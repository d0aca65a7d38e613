package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"
	zlog "github.com/rs/zerolog/log"
)

// ErrNoProxy is returned for a proxy name that was never added.
var ErrNoProxy = errors.New("faults: no such proxy")

// Proxies is a set of TCP proxies, one per server, run by an in-process Toxiproxy. The zero value is
// not usable: call NewProxies. Methods are safe for concurrent use.
type Proxies struct {
	srv *toxiproxy.ApiServer

	mu      sync.Mutex
	proxies map[string]*toxiproxy.Proxy
	seq     int
}

// quietToxics silences the logger some Toxiproxy toxics (bandwidth) write to: zerolog's global one,
// which clickfleet does not otherwise use, so the process's stderr stays the project's own.
var quietToxics sync.Once

// NewProxies returns an empty set; it does no I/O.
func NewProxies() *Proxies {
	quietToxics.Do(func() { zlog.Logger = zerolog.Nop() })
	return &Proxies{srv: toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop()), proxies: map[string]*toxiproxy.Proxy{}}
}

// Add starts a proxy named name that listens on listen (host:port; port 0 picks a free one) and forwards
// each connection to upstream (host:port). It returns the address it listens on.
func (p *Proxies) Add(name, listen, upstream string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.proxies[name]; ok {
		return "", fmt.Errorf("faults: proxy %s already added", name)
	}
	px := toxiproxy.NewProxy(p.srv, name, listen, upstream)
	if err := p.srv.Collection.Add(px, true); err != nil {
		return "", fmt.Errorf("faults: proxy %s on %s → %s: %w", name, listen, upstream, err)
	}
	p.proxies[name] = px
	return px.Listen, nil
}

// Addr returns the address proxy name listens on.
func (p *Proxies) Addr(name string) (string, error) {
	px, err := p.get(name)
	if err != nil {
		return "", err
	}
	px.Lock()
	defer px.Unlock()
	return px.Listen, nil
}

func (p *Proxies) get(name string) (*toxiproxy.Proxy, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	px, ok := p.proxies[name]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNoProxy, name)
	}
	return px, nil
}

// toxic adds a toxic of the given Toxiproxy type and attributes to both directions of proxy name, and
// returns its names (one per direction), for Remove.
func (p *Proxies) toxic(name, kind string, attrs map[string]any, streams ...string) ([]string, error) {
	px, err := p.get(name)
	if err != nil {
		return nil, err
	}
	if len(streams) == 0 {
		streams = []string{"downstream", "upstream"}
	}
	var names []string
	for _, stream := range streams {
		p.mu.Lock()
		p.seq++
		tname := fmt.Sprintf("%s-%s-%d", kind, stream, p.seq)
		p.mu.Unlock()
		body, err := json.Marshal(map[string]any{"name": tname, "type": kind, "stream": stream, "toxicity": 1.0, "attributes": attrs})
		if err != nil {
			return names, err
		}
		if _, err := px.Toxics.AddToxicJson(bytes.NewReader(body)); err != nil {
			return names, fmt.Errorf("faults: %s on proxy %s: %w", kind, name, err)
		}
		names = append(names, tname)
	}
	return names, nil
}

// Latency delays every chunk of data in both directions of proxy name by latency ± jitter, until
// removed. It returns the toxics' names for Remove.
func (p *Proxies) Latency(name string, latency, jitter time.Duration) ([]string, error) {
	return p.toxic(name, "latency", map[string]any{"latency": latency.Milliseconds(), "jitter": jitter.Milliseconds()})
}

// Bandwidth caps both directions of proxy name at kbps kilobytes per second, until removed.
func (p *Proxies) Bandwidth(name string, kbps int64) ([]string, error) {
	return p.toxic(name, "bandwidth", map[string]any{"rate": kbps})
}

// Timeout stops all data through proxy name (from the server: replies never arrive) and closes each
// connection after d (0: never), until removed: a server that hangs.
func (p *Proxies) Timeout(name string, d time.Duration) ([]string, error) {
	return p.toxic(name, "timeout", map[string]any{"timeout": d.Milliseconds()}, "downstream")
}

// ResetPeer resets (TCP RST) each connection through proxy name after after of traffic (0: at once),
// until removed: requests in flight fail with "connection reset by peer".
func (p *Proxies) ResetPeer(name string, after time.Duration) ([]string, error) {
	return p.toxic(name, "reset_peer", map[string]any{"timeout": after.Milliseconds()}, "downstream")
}

// Remove takes the named toxics off proxy name; names already gone are skipped.
func (p *Proxies) Remove(name string, toxics []string) error {
	px, err := p.get(name)
	if err != nil {
		return err
	}
	for _, t := range toxics {
		if err := px.Toxics.RemoveToxic(context.Background(), t); err != nil && !errors.Is(err, toxiproxy.ErrToxicNotFound) {
			return fmt.Errorf("faults: remove %s from proxy %s: %w", t, name, err)
		}
	}
	return nil
}

// Clear removes every toxic of proxy name and makes sure it accepts connections.
func (p *Proxies) Clear(name string) error {
	px, err := p.get(name)
	if err != nil {
		return err
	}
	px.Toxics.ResetToxics(context.Background())
	return p.Enable(name)
}

// Disable closes proxy name's listener and every connection through it: the server looks down (connect
// refused) until Enable.
func (p *Proxies) Disable(name string) error {
	px, err := p.get(name)
	if err != nil {
		return err
	}
	px.Stop()
	return nil
}

// Enable starts proxy name listening again on the same address after Disable.
func (p *Proxies) Enable(name string) error {
	px, err := p.get(name)
	if err != nil {
		return err
	}
	if err := px.Start(); err != nil && !errors.Is(err, toxiproxy.ErrProxyAlreadyStarted) {
		return fmt.Errorf("faults: enable proxy %s: %w", name, err)
	}
	return nil
}

// SetUpstream points proxy name at upstream (host:port) from now on, as a failover moves a managed
// endpoint's name to another server: it closes every connection through the proxy (clients reconnect
// and reach the new upstream), listens again on the same address (enabling a disabled proxy) and keeps
// its toxics.
func (p *Proxies) SetUpstream(name, upstream string) error {
	px, err := p.get(name)
	if err != nil {
		return err
	}
	px.Lock()
	listen := px.Listen
	px.Unlock()
	if err := px.Update(&toxiproxy.Proxy{Name: name, Listen: listen, Upstream: upstream, Enabled: true}); err != nil {
		return fmt.Errorf("faults: point proxy %s at %s: %w", name, upstream, err)
	}
	return nil
}

// Close stops every proxy and closes their connections. It is idempotent.
func (p *Proxies) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = p.srv.Collection.Clear()
	p.proxies = map[string]*toxiproxy.Proxy{}
}
