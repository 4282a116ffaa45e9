// Go's side of bench/coro.sh: the same three measurements with goroutines,
// GOMAXPROCS=1 (set by the script).
package main

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

func rssKiB() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	var size, res uint64
	fmt.Sscan(string(b), &size, &res)
	return res * uint64(os.Getpagesize()) / 1024
}

//go:noinline
func shallow(ch chan struct{}, x int) {
	var frame [32]byte
	frame[0] = byte(x)
	<-ch
	_ = frame
}

func minMedian(f func(iters int), iters, runs int) (float64, float64) {
	f(iters / 10)
	t := make([]float64, runs)
	for r := range t {
		start := time.Now()
		f(iters)
		t[r] = float64(time.Since(start).Nanoseconds()) / float64(iters)
	}
	sort.Float64s(t)
	return t[0], t[runs/2]
}

// Stack growth: the same trip as bench/coro.c's growth(): recurse to 1 MiB
// with 1 KiB frames, Gosched every 64 frames both ways, in a fresh goroutine.
var growDone int32

//go:noinline
func deepRec(depth int) int {
	var pad [1000]byte
	pad[0] = byte(depth)
	if depth%64 == 0 {
		runtime.Gosched()
	}
	r := 0
	if depth < 1024 {
		r = deepRec(depth + 1)
	}
	if depth%64 == 0 {
		runtime.Gosched()
	}
	return r + int(pad[depth%1000])
}

func growthTrip() {
	atomic.StoreInt32(&growDone, 0)
	var w sync.WaitGroup
	w.Add(2)
	go func() { deepRec(1); atomic.StoreInt32(&growDone, 1); w.Done() }()
	go func() {
		for atomic.LoadInt32(&growDone) == 0 {
			runtime.Gosched()
		}
		w.Done()
	}()
	w.Wait()
}

func main() {
	runs, n := 5, 1000000
	if len(os.Args) > 1 {
		runs, _ = strconv.Atoi(os.Args[1])
	}
	if len(os.Args) > 2 {
		n, _ = strconv.Atoi(os.Args[2])
	}
	ch := make(chan struct{})
	runtime.GC()
	before := rssKiB()
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) { shallow(ch, i); wg.Done() }(i)
	}
	for runtime.NumGoroutine() < n+1 {
		runtime.Gosched()
	}
	after := rssKiB()
	fmt.Printf("bench/coro (Go %s): %d idle goroutines, RSS %d -> %d KiB: %.0f bytes per goroutine\n",
		runtime.Version(), n, before, after, float64(after-before)*1024/float64(n))
	close(ch)
	wg.Wait()

	mn, md := minMedian(func(iters int) {
		var w sync.WaitGroup
		for i := 0; i < iters; i++ {
			w.Add(1)
			go func() { w.Done() }()
			if i&1023 == 1023 {
				runtime.Gosched()
			}
		}
		w.Wait()
	}, 1000000, runs)
	fmt.Printf("BenchmarkCoroCreateRun-go\t1000000\t%.2f ns/op\t(min of %d runs; median %.2f)\n", mn, runs, md)
	mn, md = minMedian(func(iters int) {
		var w sync.WaitGroup
		for k := 0; k < 2; k++ {
			w.Add(1)
			go func() {
				for i := 0; i < iters/2; i++ {
					runtime.Gosched()
				}
				w.Done()
			}()
		}
		w.Wait()
	}, 2000000, runs)
	fmt.Printf("BenchmarkCoroYield/Gosched-go\t2000000\t%.2f ns/op\t(min of %d runs; median %.2f)\n", mn, runs, md)
	mn, md = minMedian(func(iters int) {
		ping, pong := make(chan int), make(chan int)
		go func() {
			for v := range ping {
				pong <- v
			}
		}()
		v := 0
		for i := 0; i < iters; i++ {
			ping <- v
			v = <-pong
		}
		close(ping)
	}, 1000000, runs)
	fmt.Printf("BenchmarkChanPingPong/roundtrip-go\t1000000\t%.2f ns/op\t(min of %d runs; median %.2f)\n", mn, runs, md)
	mn, md = minMedian(func(iters int) {
		for i := 0; i < iters; i++ {
			growthTrip()
		}
	}, 50, runs)
	fmt.Printf("BenchmarkStackGrowth1MiB-go\t50\t%.0f ns/op\t(min of %d runs; median %.0f; Go's stack doubles 2 KiB -> 1 MiB by copystack)\n", mn, runs, md)
}
