package main

import (
	"strings"
	"testing"

	"github.com/clickfleet/clickfleet/bench"
)

// The drain's table shows the CPU per record of the bare loop and the workers, each server's CPU, the
// session writes and whether the counts were verified.
func TestDrainTable(t *testing.T) {
	res := bench.DrainResult{Records: 100000, Shards: 8, Users: 10000, Workers: 1, Processor: "actors", Verified: true,
		BareCPUSeconds: 0.42, BareCPUPerRecord: 4200, WorkersCPUSeconds: 2.47, WorkersCPUPerRecord: 24700, CPURatio: 5.88,
		Servers:       []bench.ServerCPU{{Name: "dynalite", PID: 42, BareCPUSeconds: 0.01, WorkersCPUSeconds: 5.03, WorkersCPUPerRecord: 50300}},
		SessionWrites: 18609, Sessions: 10000, SessionWritesPerSession: 1.8609}
	var b strings.Builder
	if err := writeDrainTable(&b, res); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"CPU, bare loop  0.42 s  4.2 µs/record",
		"CPU, worker(s)  2.47 s  24.7 µs/record  5.88× baseline",
		"CPU, dynalite (PID 42)  bare loop 0.01 s  workers 5.03 s  50.3 µs/record",
		"18609 writes  10000 sessions  1.86 writes per session",
		"counts verified  yes",
	} {
		if !strings.Contains(strings.Join(strings.Fields(b.String()), " "), strings.Join(strings.Fields(want), " ")) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}
