// gochurn: real Go's side of `make bench`'s batch-churn row (baselines.md,
// "Batch churn"). Each of GOMAXPROCS goroutines allocates -batch objects of
// -size bytes with no pointers into a slice, drops them (the next round
// overwrites them) and repeats, for -duration; GOGC as the environment sets it
// (default 100). Prints one JSON line: objects per second over all goroutines,
// GOMAXPROCS, the collections and total pause of the run, and the process's CPU
// time over the run (bench.py checks it against GOMAXPROCS x the wall time, to
// drop a run other work on the machine disturbed).
//
// goruntime's side of the row is goruntime/cmd/benchkernels.pyx's batch_churn,
// which frees each batch explicitly where Go's collector finds it dead.
package main

import (
	"encoding/json"
	"flag"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"
)

// The objects escape into a slice the collector can see, so that every one is
// a heap allocation (mallocgc), as in the model.
type obj64 [64]byte

var sinks [][]*obj64

func churn64(s []*obj64, deadline time.Time) uint64 {
	var n uint64
	for time.Now().Before(deadline) {
		for i := range s {
			s[i] = new(obj64)
		}
		n += uint64(len(s))
	}
	return n
}

func churnBytes(s [][]byte, size int, deadline time.Time) uint64 {
	var n uint64
	for time.Now().Before(deadline) {
		for i := range s {
			s[i] = make([]byte, size)
		}
		n += uint64(len(s))
	}
	return n
}

func main() {
	duration := flag.Duration("duration", 500*time.Millisecond, "how long each goroutine churns")
	batch := flag.Int("batch", 1000, "objects per batch")
	size := flag.Int("size", 64, "object size in bytes")
	flag.Parse()
	procs := runtime.GOMAXPROCS(0)
	counts := make([]uint64, procs)
	sinks = make([][]*obj64, procs)
	byteSinks := make([][][]byte, procs)
	for i := range sinks {
		sinks[i] = make([]*obj64, *batch)
		byteSinks[i] = make([][]byte, *batch)
	}
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var start, ready sync.WaitGroup
	start.Add(1)
	ready.Add(procs)
	var done sync.WaitGroup
	done.Add(procs)
	t0 := time.Now()
	for g := 0; g < procs; g++ {
		go func(g int) {
			defer done.Done()
			ready.Done()
			start.Wait()
			deadline := time.Now().Add(*duration)
			if *size == 64 {
				counts[g] = churn64(sinks[g], deadline)
			} else {
				counts[g] = churnBytes(byteSinks[g], *size, deadline)
			}
		}(g)
	}
	ready.Wait()
	var ru0, ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	t0 = time.Now()
	start.Done()
	done.Wait()
	elapsed := time.Since(t0)
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	var total uint64
	for _, c := range counts {
		total += c
	}
	json.NewEncoder(os.Stdout).Encode(map[string]interface{}{
		"objects_per_sec": float64(total) / elapsed.Seconds(),
		"objects":         total,
		"gomaxprocs":      procs,
		"numgc":           after.NumGC - before.NumGC,
		"pause_total_ns":  after.PauseTotalNs - before.PauseTotalNs,
		"elapsed_ns":      elapsed.Nanoseconds(),
		"cpu_ns":          cpu.Nanoseconds(),
	})
}
