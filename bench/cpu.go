package bench

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"syscall"
	"time"
)

// CPU time as the benchmarks account it: user + system time, from /proc/<pid>/stat for other processes
// (Linux only) and from getrusage for this one.

// userHZ is the unit of the times in /proc/<pid>/stat: USER_HZ, which Linux fixes at 100 in its ABI
// whatever the kernel's tick rate.
const userHZ = 100

// procStat is what the benchmarks read from one /proc/<pid>/stat line.
type procStat struct {
	ppid     int
	cpu      time.Duration // utime + stime: every thread of the process
	childCPU time.Duration // cutime + cstime: its children that have exited and been waited for
	zombie   bool          // exited, not yet waited for
}

// parseProcStat parses a /proc/<pid>/stat line. The command name (field 2) is in parentheses and may
// itself hold spaces and parentheses, so the fields are counted from the last ')'.
func parseProcStat(line []byte) (procStat, error) {
	i := bytes.LastIndexByte(line, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("bench: /proc stat line without a command name: %.60q", line)
	}
	// After the name: state(3) ppid(4) … utime(14) stime(15) cutime(16) cstime(17).
	f := bytes.Fields(line[i+1:])
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("bench: /proc stat line has %d fields after the command name, want at least 15", len(f))
	}
	var n [5]int64
	for j, k := range []int{1, 11, 12, 13, 14} {
		v, err := strconv.ParseInt(string(f[k]), 10, 64)
		if err != nil {
			return procStat{}, fmt.Errorf("bench: /proc stat field %d: %w", k+3, err)
		}
		n[j] = v
	}
	tick := time.Second / userHZ
	return procStat{ppid: int(n[0]), cpu: time.Duration(n[1]+n[2]) * tick, childCPU: time.Duration(n[3]+n[4]) * tick,
		zombie: string(f[0]) == "Z"}, nil
}

// readProcStat reads and parses /proc/<pid>/stat.
func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, fmt.Errorf("bench: CPU of process %d: %w", pid, err)
	}
	return parseProcStat(b)
}

// treeCPU is the user + system CPU time used so far by pid, its live descendants, and every process
// that exited and was waited for within that tree (a server that forks per connection, as PostgreSQL
// does). Each process counts once: a live one by its own time, an exited one in its waiter's children's
// time. Processes exiting while /proc is read may be missed or, rarely, counted twice.
func treeCPU(pid int) (time.Duration, error) {
	root, err := readProcStat(pid)
	if err != nil {
		return 0, err
	}
	children, err := procChildren()
	if err != nil {
		return 0, err
	}
	total := root.cpu + root.childCPU
	queue := children[pid]
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		total += c.stat.cpu + c.stat.childCPU
		queue = append(queue, children[c.pid]...)
	}
	return total, nil
}

type procEntry struct {
	pid  int
	stat procStat
}

// procChildren reads every process's stat and returns them by parent PID.
func procChildren() (map[int][]procEntry, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("bench: list processes: %w", err)
	}
	out := make(map[int][]procEntry)
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue // not a process
		}
		s, err := readProcStat(pid)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			continue // exited meanwhile
		}
		if err != nil {
			return nil, err
		}
		out[s.ppid] = append(out[s.ppid], procEntry{pid: pid, stat: s})
	}
	return out, nil
}

// selfCPU is the user + system CPU time this process has used so far, every thread (getrusage: exact to
// the microsecond, where /proc counts 10 ms ticks).
func selfCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("bench: getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}
