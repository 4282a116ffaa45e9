// Go's side of bench/coro.sh: the same measurements with goroutines, at
// GOMAXPROCS=1 and 2 (set by the script; rows at two end in /P2).
//   coro [RUNS] [N]         every row
//   coro RUNS N idlerecv    only the idle-at-top-level row (run by the first
//                           in a process of its own: a fresh heap)
package main

import (
	"fmt"
	"os"
	"os/exec"
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

var suffix string // "" at GOMAXPROCS=1, "/P2" at 2

func name(base string) string { return base + suffix }

// Ping-pong with about `below` bytes of frames under each side (frames of
// about 256 bytes: 232 of locals, the return address and frame pointer).
var frameSink byte

//go:noinline
func withFrames(n int, fn func()) {
	var pad [232]byte
	pad[n%232] = 1
	if n > 0 {
		withFrames(n-1, fn)
	} else {
		fn()
	}
	frameSink += pad[0]
}

func deepPingPong(below, iters int) {
	frames := below / 256
	ping, pong := make(chan int), make(chan int)
	done := make(chan struct{})
	go withFrames(frames, func() {
		for v := range ping {
			pong <- v
		}
	})
	go withFrames(frames, func() {
		v := 0
		for i := 0; i < iters; i++ {
			ping <- v
			v = <-pong
		}
		close(ping)
		close(done)
	})
	<-done
}

// Recursion 40,000 frames of 128 bytes deep in a fresh goroutine: its stack
// doubles from 2 KiB to 8 MiB by copystack on the way down.
const recDepth = 40000

var recSink int

//go:noinline
func rec128(d int) int {
	var pad [128]byte
	pad[d%128] = byte(d)
	r := 0
	if d > 1 {
		r = rec128(d - 1)
	}
	return r + int(pad[0])
}

// n goroutines parked at once on a channel, then woken by its close.
func alive(n int) {
	ch := make(chan struct{})
	var wg sync.WaitGroup
	base := runtime.NumGoroutine()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() { <-ch; wg.Done() }()
	}
	for runtime.NumGoroutine() < n+base {
		runtime.Gosched()
	}
	close(ch)
	wg.Wait()
}

func idleRecv(n int) {
	ch := make(chan struct{})
	runtime.GC()
	before := rssKiB()
	for i := 0; i < n; i++ {
		go func() { <-ch }()
	}
	for runtime.NumGoroutine() < n+1 {
		runtime.Gosched()
	}
	after := rssKiB()
	fmt.Printf("Benchmark%s-go\t%d\t%.0f B/coroutine\t(RSS %d -> %d KiB; parked in <-ch at top level)\n",
		name("CoroIdleRecv"), n, float64(after-before)*1024/float64(n), before, after)
	close(ch)
}

func main() {
	runs, n := 5, 1000000
	if len(os.Args) > 1 {
		runs, _ = strconv.Atoi(os.Args[1])
	}
	if len(os.Args) > 2 {
		n, _ = strconv.Atoi(os.Args[2])
	}
	if runtime.GOMAXPROCS(0) > 1 {
		suffix = fmt.Sprintf("/P%d", runtime.GOMAXPROCS(0))
	}
	if len(os.Args) > 3 && os.Args[3] == "idlerecv" {
		idleRecv(n)
		return
	}
	fmt.Printf("bench/coro (Go %s): GOMAXPROCS=%d\n", runtime.Version(), runtime.GOMAXPROCS(0))
	self := exec.Command(os.Args[0], strconv.Itoa(runs), strconv.Itoa(n), "idlerecv")
	self.Stdout, self.Stderr = os.Stdout, os.Stderr
	if err := self.Run(); err != nil {
		fmt.Println("idle-at-top-level run failed:", err)
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
	fmt.Printf("Benchmark%s-go\t1000000\t%.2f ns/op\t(min of %d runs; median %.2f)\n", name("CoroCreateRun"), mn, runs, md)
	mn, md = minMedian(func(iters int) {
		var w sync.WaitGroup
		for i := 0; i < iters; i += 100 {
			w.Add(100)
			for k := 0; k < 100; k++ {
				go func() { w.Done() }()
			}
			w.Wait()
		}
	}, 1000000, runs)
	fmt.Printf("Benchmark%s-go\t1000000\t%.2f ns/op\t(min of %d runs; median %.2f)\n", name("CoroCreateRun/batch100"), mn, runs, md)
	{
		aruns := runs
		if aruns > 3 {
			aruns = 3
		}
		start := time.Now()
		alive(n)
		first := float64(time.Since(start).Nanoseconds()) / float64(n)
		t := make([]float64, aruns)
		for i := range t {
			start = time.Now()
			alive(n)
			t[i] = float64(time.Since(start).Nanoseconds()) / float64(n)
		}
		sort.Float64s(t)
		fmt.Printf("Benchmark%s-go\t%d\t%.2f ns/op\t(min of %d runs; median %.2f; first pass %.2f; %d alive at once)\n",
			name("CoroAlive"), n, t[0], aruns, t[aruns/2], first, n)
	}
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
	fmt.Printf("Benchmark%s-go\t2000000\t%.2f ns/op\t(min of %d runs; median %.2f)\n", name("CoroYield/Gosched"), mn, runs, md)
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
	fmt.Printf("Benchmark%s-go\t1000000\t%.2f ns/op\t(min of %d runs; median %.2f)\n", name("ChanPingPong/roundtrip"), mn, runs, md)
	for _, kib := range []int{2, 8, 32} {
		below := kib << 10
		mn, md = minMedian(func(iters int) { deepPingPong(below, iters) }, 300000, runs)
		fmt.Printf("Benchmark%s-go\t300000\t%.2f ns/op\t(min of %d runs; median %.2f)\n",
			name(fmt.Sprintf("ChanPingPong/frames%dK", kib)), mn, runs, md)
	}
	mn, md = minMedian(func(iters int) {
		for t := 0; t < (iters+recDepth-1)/recDepth; t++ {
			done := make(chan int)
			go func() { done <- rec128(recDepth) }()
			recSink += <-done
		}
	}, 20*recDepth, runs)
	fmt.Printf("Benchmark%s-go\t%d\t%.2f ns/op\t(min of %d runs; median %.2f; per call, first pass)\n",
		name("Recursion40k"), 20*recDepth, mn, runs, md)
	mn, md = minMedian(func(iters int) {
		for i := 0; i < iters; i++ {
			growthTrip()
		}
	}, 50, runs)
	fmt.Printf("Benchmark%s-go\t50\t%.0f ns/op\t(min of %d runs; median %.0f; Go's stack doubles 2 KiB -> 1 MiB by copystack)\n", name("StackGrowth1MiB"), mn, runs, md)
}
