package testenv

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// StartKinesalite runs a kinesalite of the test's own (deploy/local/kinesalite.js, in memory, on a free
// port of 127.0.0.1) and returns its endpoint URL; it is killed when the test ends. For load tests that
// need kinesalite's speed whatever emulator the stack runs, without loading the stack's. It needs node
// and the stack's npm packages (deploy/local/stack up installs them); under CLICKFLEET_REQUIRE_STACK=1 a
// missing one fails the test, otherwise it skips.
func StartKinesalite(t testing.TB) string {
	t.Helper()
	root, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		t.Fatalf("find the module root: %v", err)
	}
	local := filepath.Join(strings.TrimSpace(string(root)), "deploy", "local")
	_, errNode := exec.LookPath("node")
	_, errMod := os.Stat(filepath.Join(local, "node_modules", "kinesalite", "package.json"))
	if errNode != nil || errMod != nil {
		msg := "a private kinesalite needs node and deploy/local/node_modules/kinesalite (run deploy/local/stack up once)"
		if os.Getenv("CLICKFLEET_REQUIRE_STACK") == "1" {
			t.Fatalf("%s: node: %v, module: %v", msg, errNode, errMod)
		}
		t.Skip(msg)
	}
	port := FreePort(t)
	cmd := exec.Command("node", filepath.Join(local, "kinesalite.js"), port)
	log := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start kinesalite: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	addr := net.JoinHostPort("127.0.0.1", port)
	for deadline := time.Now().Add(20 * time.Second); ; {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return "http://" + addr
		}
		select {
		case <-exited:
			t.Fatalf("kinesalite exited while starting: %s", log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("kinesalite did not listen on %s within 20s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
