package names_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/clickfleet/clickfleet/enrich/names"
	"github.com/clickfleet/clickfleet/internal/provision"
	"github.com/clickfleet/clickfleet/internal/testenv"
)

// privatePostgres is a PostgreSQL server of the test's own, so that it can be restarted.
type privatePostgres struct {
	t          *testing.T
	bin, dir   string
	port       int
	asPostgres bool
}

// startPrivatePostgres runs initdb and starts a server on a free loopback port (as the postgres user when
// the test runs as root, as the local stack does). It is stopped when the test ends.
func startPrivatePostgres(t *testing.T) *privatePostgres {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		msg := "no PostgreSQL binaries under /usr/lib/postgresql (apt-get install postgresql; deploy/local/stack up installs them)"
		if os.Getenv("CLICKFLEET_REQUIRE_STACK") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	sort.Strings(bins)
	p := &privatePostgres{t: t, bin: filepath.Dir(bins[len(bins)-1]), asPostgres: os.Geteuid() == 0}
	// t.TempDir may sit below a directory only root can enter; the postgres user needs its own.
	dir, err := os.MkdirTemp("/var/tmp", "clickfleet-pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	p.dir = dir
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if p.asPostgres {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root needs the postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		if err := os.Chown(dir, uid, -1); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.port = ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	p.run("initdb", "-D", dir+"/data", "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8")
	p.start()
	t.Cleanup(func() { p.pgctl("stop", "-m", "immediate") })
	return p
}

func (p *privatePostgres) run(tool string, args ...string) {
	p.t.Helper()
	name := filepath.Join(p.bin, tool)
	if p.asPostgres {
		args = append([]string{"-u", "postgres", "--", name}, args...)
		name = "runuser"
	}
	cmd := exec.Command(name, args...)
	cmd.Dir = "/"
	if out, err := cmd.CombinedOutput(); err != nil {
		p.t.Fatalf("%s %v: %v\n%s", tool, args, err, out)
	}
}

func (p *privatePostgres) pgctl(args ...string) {
	p.t.Helper()
	p.run("pg_ctl", append([]string{"-D", p.dir + "/data", "-w", "-t", "30"}, args...)...)
}

func (p *privatePostgres) start() {
	p.t.Helper()
	p.pgctl("-l", p.dir+"/pg.log", "-o", fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off", p.port, p.dir), "start")
}

func (p *privatePostgres) dsn() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p.port)
}

// The Syncer survives a PostgreSQL restart: it reconnects (with backoff), LISTENs again, copies what changed
// while it was away, and applies later changes at once again.
func TestSyncerSurvivesPostgresRestart(t *testing.T) {
	rdb := testenv.Redis(t)
	pg := startPrivatePostgres(t)
	pool := newPool(t, pg.dsn())
	ctx := context.Background()
	if err := provision.EnsureCustomersSchema(ctx, pool); err != nil {
		t.Fatal(err)
	}
	prefix := testenv.Name(t, "cf") + ":"
	t.Cleanup(func() {
		keys := rdb.Keys(context.Background(), prefix+"*").Val()
		if len(keys) > 0 {
			rdb.Del(context.Background(), keys...)
		}
	})
	runSyncer(t, names.Config{Pool: pool, Redis: rdb, Prefix: prefix, Interval: time.Hour,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond})
	exec1 := func(sql string) {
		t.Helper()
		// The pool may hand out a connection the restart killed: retry briefly.
		var err error
		for range 50 {
			if _, err = pool.Exec(ctx, sql); err == nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("%s: %v", sql, err)
	}
	exec1(`INSERT INTO customers (customer_id, name, price_per_click) VALUES ('a', 'Ada Lovelace', 1)`)
	hasName(t, rdb, prefix, "a", "Ada Lovelace", "1.0000", 5*time.Second)

	pg.pgctl("stop", "-m", "fast")
	pg.start()
	// Made before the Syncer has reconnected (most likely): it arrives with the copy after the reconnect.
	exec1(`INSERT INTO customers (customer_id, name, price_per_click) VALUES ('b', 'Barbara Liskov', 2)`)
	hasName(t, rdb, prefix, "b", "Barbara Liskov", "2.0000", 10*time.Second)
	// Once it listens again, changes arrive at once.
	exec1(`UPDATE customers SET name = 'Ada King' WHERE customer_id = 'a'`)
	hasName(t, rdb, prefix, "a", "Ada King", "1.0000", 5*time.Second)
}
