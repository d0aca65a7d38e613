package bench

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Server is a local server whose CPU time a benchmark reports.
type Server struct {
	Name string
	PID  int
}

// stackPIDFiles are the PID files deploy/local/stack keeps in its directory, by server.
var stackPIDFiles = []struct{ name, file string }{
	{"kinesis", "kinesis.pid"}, // named after kinesis.impl when that says which emulator
	{"kinesis-limits", "kinesis-limits.pid"},
	{"kinesis-efo-proxy", "kinesis-efo-proxy.pid"},
	{"dynalite", "dynamodb.pid"},
	{"redis", "redis.pid"},
	{"versitygw", "s3.pid"},
	{"postgresql", filepath.Join("pg", "data", "postmaster.pid")}, // the PID is its first line
}

// StackServers returns the running servers of the local stack in dir (deploy/local/stack's
// CLICKFLEET_STACK_DIR), from their PID files: a missing file or a process that has exited is a server
// not running, and is left out. It fails when a PID file cannot be read or parsed, or when no server of
// the stack runs.
func StackServers(dir string) ([]Server, error) {
	var out []Server
	for _, s := range stackPIDFiles {
		b, err := os.ReadFile(filepath.Join(dir, s.file))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("bench: stack %s: %w", dir, err)
		}
		first, _, _ := bytes.Cut(b, []byte("\n"))
		pid, err := strconv.Atoi(strings.TrimSpace(string(first)))
		if err != nil || pid <= 0 {
			return nil, fmt.Errorf("bench: stack %s: %s holds no PID: %.40q", dir, s.file, first)
		}
		if st, err := readProcStat(pid); err != nil || st.zombie {
			continue // stale: the server is not running
		}
		name := s.name
		if name == "kinesis" {
			if impl, err := os.ReadFile(filepath.Join(dir, "kinesis.impl")); err == nil {
				name = strings.TrimSpace(string(impl))
			}
		}
		out = append(out, Server{Name: name, PID: pid})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("bench: stack %s: no server running there (no live PID in its *.pid files)", dir)
	}
	return out, nil
}

// cpuSample is the CPU time used so far by this process and by each server (with its process tree).
type cpuSample struct {
	self    time.Duration
	servers []time.Duration
}

// sampleCPU reads this process's and the servers' CPU time. A server that has gone is an error naming it.
func sampleCPU(servers []Server) (cpuSample, error) {
	self, err := selfCPU()
	if err != nil {
		return cpuSample{}, err
	}
	s := cpuSample{self: self, servers: make([]time.Duration, len(servers))}
	for i, srv := range servers {
		if s.servers[i], err = treeCPU(srv.PID); err != nil {
			return cpuSample{}, fmt.Errorf("bench: server %s (PID %d): %w", srv.Name, srv.PID, err)
		}
	}
	return s, nil
}

// since is the CPU time used from earlier to s.
func (s cpuSample) since(earlier cpuSample) cpuSample {
	d := cpuSample{self: s.self - earlier.self, servers: make([]time.Duration, len(s.servers))}
	for i := range s.servers {
		d.servers[i] = s.servers[i] - earlier.servers[i]
	}
	return d
}
