package bench

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A /proc/<pid>/stat line gives the parent, the process's CPU and its waited-for children's, in ticks of
// 10 ms, whatever its command name holds.
func TestParseProcStat(t *testing.T) {
	// Fields 3–17 as Linux writes them: utime 150, stime 25, cutime 300, cstime 7.
	const rest = " S 4242 17 17 0 -1 4194560 900 0 0 0 150 25 300 7 20 0 9 0 5000 1000 100 18446744073709551615"
	for _, tc := range []struct {
		name, line string
		want       procStat
		wantErr    string
	}{
		{name: "plain", line: "1234 (redis-server)" + rest,
			want: procStat{ppid: 4242, cpu: 1750 * time.Millisecond, childCPU: 3070 * time.Millisecond}},
		{name: "name with spaces and parentheses", line: "1234 (a) b (c d))" + rest,
			want: procStat{ppid: 4242, cpu: 1750 * time.Millisecond, childCPU: 3070 * time.Millisecond}},
		{name: "zombie", line: "1234 (node) Z" + strings.TrimPrefix(rest, " S"),
			want: procStat{ppid: 4242, cpu: 1750 * time.Millisecond, childCPU: 3070 * time.Millisecond, zombie: true}},
		{name: "no name", line: "1234 node" + rest, wantErr: "without a command name"},
		{name: "cut short", line: "1234 (node) S 1 2 3", wantErr: "want at least 15"},
		{name: "not a number", line: "1234 (node) S 1 2 3 4 5 6 7 8 9 10 x 12 13 14", wantErr: "field 14"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseProcStat([]byte(tc.line))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("parseProcStat = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// burnTree is a shell that runs one child to its end (waited for: its CPU is in the shell's children's
// time), starts another that stays until the end of the input, and burns CPU itself. Each burn is a
// bounded loop (about 65 ms of CPU in dash), after which the burner says "burnt" and its PID.
const burnTree = `exec 3<&0 # a background child's own stdin is /dev/null
burn='i=0; while [ "$i" -lt 50000 ]; do i=$((i+1)); done'
sh -c "$burn"
sh -c "$burn"'; echo "burnt $$"; exec cat <&3 >/dev/null' &
eval "$burn"; echo "burnt $$"; cat >/dev/null; wait`

// A real process tree burning CPU: the shell's own CPU is measured above zero and within the wall time,
// its waited-for child's above zero, and the tree's holds both and the live child's, within three times
// the wall time (three single-threaded processes).
func TestTreeCPUOfBurningProcesses(t *testing.T) {
	start := time.Now()
	cmd := exec.Command("/bin/sh", "-c", burnTree)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close() // the shell and its live child end at the end of their input
		if err := cmd.Wait(); err != nil {
			t.Errorf("shell: %v", err)
		}
	}()
	live := burnt(t, bufio.NewReader(stdout), cmd.Process.Pid)
	wall := time.Since(start)
	own, err := readProcStat(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	child, err := readProcStat(live)
	if err != nil {
		t.Fatal(err)
	}
	tree, err := treeCPU(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("wall %v; the shell's CPU %v, its waited-for child's %v, its live child's %v; the tree's %v", wall, own.cpu, own.childCPU, child.cpu, tree)
	if own.cpu <= 0 || own.cpu > wall {
		t.Errorf("the shell's CPU %v, want above 0 and within the wall time %v", own.cpu, wall)
	}
	if own.childCPU <= 0 || child.cpu <= 0 {
		t.Errorf("the shell's children's CPU: waited for %v, live %v; want both above 0", own.childCPU, child.cpu)
	}
	if sum := own.cpu + own.childCPU + child.cpu; tree < sum || tree > 3*wall {
		t.Errorf("the tree's CPU %v, want at least the shell's, its waited-for and its live child's (%v) and within 3 × the wall time %v",
			tree, sum, wall)
	}
}

// burnt reads the two burners' "burnt PID" lines and returns the PID that is not the shell's.
func burnt(t *testing.T, r *bufio.Reader, shell int) int {
	t.Helper()
	live := 0
	for range 2 {
		line, err := r.ReadString('\n')
		pid, perr := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "burnt ")))
		if err != nil || perr != nil || !strings.HasPrefix(line, "burnt ") {
			t.Fatalf("the shell said %q (%v), want burnt and a PID", line, err)
		}
		if pid != shell {
			live = pid
		}
	}
	if live == 0 {
		t.Fatal("the live child did not say its PID")
	}
	return live
}

// The stack's servers are read from its PID files: live ones listed with the emulator's name, a stale PID
// (a process that has exited) left out, a PID file without a PID an error naming it.
func TestStackServers(t *testing.T) {
	exited := exec.Command("true")
	if err := exited.Run(); err != nil {
		t.Fatal(err)
	}
	self := strconv.Itoa(os.Getpid())
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := StackServers(dir); err == nil || !strings.Contains(err.Error(), "no server running") {
		t.Fatalf("empty stack: err = %v, want no server running", err)
	}
	write("kinesis.pid", self+"\n")
	write("kinesis.impl", "kinesalite\n")
	write("dynamodb.pid", strconv.Itoa(exited.Process.Pid)+"\n")
	write("pg/data/postmaster.pid", self+"\n/var/lib/postgresql/data\n")
	got, err := StackServers(dir)
	want := []Server{{Name: "kinesalite", PID: os.Getpid()}, {Name: "postgresql", PID: os.Getpid()}}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("StackServers = %+v, %v; want %+v", got, err, want)
	}
	write("redis.pid", "\n")
	if _, err := StackServers(dir); err == nil || !strings.Contains(err.Error(), "redis.pid holds no PID") {
		t.Fatalf("empty redis.pid: err = %v, want one naming it", err)
	}
}
