// gopause: real Go's side of `make bench`'s pause rows. Each of GOMAXPROCS
// goroutines keeps a ring of -live/GOMAXPROCS bytes in -size byte objects with
// no pointers, and replaces its objects one by one for -duration, so that the
// heap stays at about -live bytes live while the collector runs (GOGC as the
// environment sets it). Prints one JSON line: the collections of the run after
// the ring was built, and the median and largest stop-the-world pause among
// them (runtime.MemStats.PauseNs: both of a cycle's pauses).
//
// goruntime's side is the same workload on Runtime.run (bench.py's bench_pause).
package main

import (
	"encoding/json"
	"flag"
	"os"
	"runtime"
	"sort"
	"sync"
	"time"
)

func churn(ring [][]byte, size int, deadline time.Time) {
	for i := 0; time.Now().Before(deadline); {
		for k := 0; k < 256; k++ {
			ring[i] = make([]byte, size)
			i++
			if i == len(ring) {
				i = 0
			}
		}
	}
}

func main() {
	live := flag.Int("live", 16<<20, "live heap in bytes")
	size := flag.Int("size", 4096, "object size in bytes")
	duration := flag.Duration("duration", 2*time.Second, "how long the objects are replaced")
	flag.Parse()
	procs := runtime.GOMAXPROCS(0)
	rings := make([][][]byte, procs)
	for p := range rings {
		rings[p] = make([][]byte, *live / *size / procs)
		for i := range rings[p] {
			rings[p][i] = make([]byte, *size)
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	first := ms.NumGC
	deadline := time.Now().Add(*duration)
	var wg sync.WaitGroup
	for p := 0; p < procs; p++ {
		wg.Add(1)
		go func(ring [][]byte) {
			defer wg.Done()
			churn(ring, *size, deadline)
		}(rings[p])
	}
	wg.Wait()
	runtime.ReadMemStats(&ms)
	// PauseNs is a ring of the last 256 collections.
	from := first + 1
	if ms.NumGC > 256 && from < ms.NumGC-255 {
		from = ms.NumGC - 255
	}
	var pauses []uint64
	for gc := from; gc <= ms.NumGC; gc++ {
		pauses = append(pauses, ms.PauseNs[(gc+255)%256])
	}
	sort.Slice(pauses, func(i, j int) bool { return pauses[i] < pauses[j] })
	out := map[string]interface{}{"gomaxprocs": procs, "live": *live, "collections": len(pauses)}
	if len(pauses) > 0 {
		out["median_pause_ns"] = pauses[len(pauses)/2]
		out["max_pause_ns"] = pauses[len(pauses)-1]
	}
	runtime.KeepAlive(rings)
	json.NewEncoder(os.Stdout).Encode(out)
}
