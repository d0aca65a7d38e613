package bench

import (
	"bufio"
	"io"
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

// cpuHelperEnv makes the test binary a process that burns CPU (see TestCPUHelperProcess).
const cpuHelperEnv = "CLICKFLEET_BENCH_CPU_HELPER"

// A real process tree burning CPU: a parent that ran one child to its end (waited for: its CPU is in the
// parent's children's time), keeps another alive, and burnt CPU itself. Its own CPU is measured above
// zero and within the wall time; the tree's holds the children's too, within three times the wall time.
func TestTreeCPUOfBurningProcesses(t *testing.T) {
	start := time.Now()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCPUHelperProcess$")
	cmd.Env = append(os.Environ(), cpuHelperEnv+"=parent")
	stdin, stdout := pipes(t, cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close() // the helpers exit at the end of their input
		if err := cmd.Wait(); err != nil {
			t.Errorf("helper: %v", err)
		}
	}()
	if line, err := bufio.NewReader(stdout).ReadString('\n'); line != "burnt\n" {
		t.Fatalf("helper said %q (%v), want burnt", line, err)
	}
	wall := time.Since(start)
	own, err := readProcStat(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	tree, err := treeCPU(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("wall %v, parent's CPU %v (children waited for %v), tree's %v", wall, own.cpu, own.childCPU, tree)
	if own.cpu <= 0 || own.cpu > wall {
		t.Errorf("parent's CPU %v, want above 0 and within the wall time %v", own.cpu, wall)
	}
	if own.childCPU <= 0 {
		t.Errorf("the parent's waited-for child's CPU is %v, want above 0", own.childCPU)
	}
	if tree <= own.cpu+own.childCPU || tree > 3*wall {
		t.Errorf("tree's CPU %v, want above the parent's own and its waited-for child's (%v) and within 3 × the wall time %v",
			tree, own.cpu+own.childCPU, wall)
	}
}

func pipes(t *testing.T, cmd *exec.Cmd) (io.WriteCloser, io.Reader) {
	t.Helper()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	return stdin, stdout
}

// TestCPUHelperProcess is not a test: run with cpuHelperEnv set it is one of TestTreeCPUOfBurningProcesses's
// processes. "burn" burns 150 ms of CPU and exits; "stay" burns and says so, then waits for the end of its
// input; "parent" runs a burn and a stay child, burns, says so and waits for the end of its input.
func TestCPUHelperProcess(t *testing.T) {
	mode := os.Getenv(cpuHelperEnv)
	if mode == "" {
		return
	}
	if err := cpuHelper(mode); err != nil {
		os.Stderr.WriteString("cpu helper: " + err.Error() + "\n")
		os.Exit(1)
	}
	os.Exit(0)
}

func cpuHelper(mode string) error {
	child := func(m string) *exec.Cmd {
		c := exec.Command(os.Args[0], "-test.run=^TestCPUHelperProcess$")
		c.Env = append(os.Environ(), cpuHelperEnv+"="+m)
		c.Stderr = os.Stderr
		return c
	}
	var stay *exec.Cmd
	var stayIn io.WriteCloser
	if mode == "parent" {
		if err := child("burn").Run(); err != nil {
			return err
		}
		stay = child("stay")
		var err error
		if stayIn, err = stay.StdinPipe(); err != nil {
			return err
		}
		out, err := stay.StdoutPipe()
		if err != nil {
			return err
		}
		if err := stay.Start(); err != nil {
			return err
		}
		if _, err := bufio.NewReader(out).ReadString('\n'); err != nil {
			return err
		}
	}
	for t0 := time.Now(); time.Since(t0) < 150*time.Millisecond; {
	}
	if mode == "burn" {
		return nil
	}
	os.Stdout.WriteString("burnt\n")
	_, err := io.Copy(io.Discard, os.Stdin)
	if stay != nil {
		stayIn.Close()
		if werr := stay.Wait(); werr != nil {
			return werr
		}
	}
	return err
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
