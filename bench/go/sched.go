// Go's side of bench/sched.sh: the workloads of bench/sched.c with
// goroutines, at GOMAXPROCS=1 and 2 (set by the script; rows at two end in
// /P2). Go has no stack modes: its rows are named /go and sit beside both
// of gomem's. Burst's goroutines start from one goroutine (on its P's run
// queue, as gomem's are placed on one worker); Go's scheduler moves them.
//   sched [RUNS]
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

const (
	fibN      = 40
	fibCut    = 24
	sortN     = 10000000
	sortCut   = 65536
	burst     = 1000
	burstSpin = 600000
)

func fibSeq(n int) int {
	if n < 2 {
		return n
	}
	return fibSeq(n-1) + fibSeq(n-2)
}

func fibPar(n int) int {
	if n <= fibCut {
		return fibSeq(n)
	}
	var wg sync.WaitGroup
	var left int
	wg.Add(1)
	go func() { left = fibPar(n - 1); wg.Done() }()
	r := fibPar(n - 2)
	wg.Wait()
	return r + left
}

func merge(a, tmp []int32, mid int) {
	i, j, k := 0, mid, 0
	for i < mid && j < len(a) {
		if a[i] <= a[j] {
			tmp[k] = a[i]
			i++
		} else {
			tmp[k] = a[j]
			j++
		}
		k++
	}
	for i < mid {
		tmp[k] = a[i]
		i++
		k++
	}
	for j < len(a) {
		tmp[k] = a[j]
		j++
		k++
	}
	copy(a, tmp[:len(a)])
}

func sortSeq(a, tmp []int32) {
	if len(a) < 2 {
		return
	}
	mid := len(a) / 2
	sortSeq(a[:mid], tmp[:mid])
	sortSeq(a[mid:], tmp[mid:])
	merge(a, tmp, mid)
}

func sortPar(a, tmp []int32) {
	if len(a) <= sortCut {
		sortSeq(a, tmp)
		return
	}
	mid := len(a) / 2
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { sortPar(a[:mid], tmp[:mid]); wg.Done() }()
	sortPar(a[mid:], tmp[mid:])
	wg.Wait()
	merge(a, tmp, mid)
}

var sink uint64

func spin(steps int, x uint64) uint64 {
	for i := 0; i < steps; i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
	}
	return x
}

func burstRun() {
	var wg sync.WaitGroup
	wg.Add(burst)
	for i := 0; i < burst; i++ {
		go func(i int) {
			time.Sleep(time.Millisecond)
			atomic.AddUint64(&sink, spin(burstSpin, uint64(i)+1))
			wg.Done()
		}(i)
	}
	wg.Wait()
}

// burstRun with the work in ten pieces, a Gosched after each (gomem's
// BurstYield).
func burstYieldRun() {
	var wg sync.WaitGroup
	wg.Add(burst)
	for i := 0; i < burst; i++ {
		go func(i int) {
			time.Sleep(time.Millisecond)
			x := uint64(i) + 1
			for k := 0; k < 10; k++ {
				x = spin(burstSpin/10, x)
				runtime.Gosched()
			}
			atomic.AddUint64(&sink, x)
			wg.Done()
		}(i)
	}
	wg.Wait()
}

// min and median of runs timings of f (ns), after one warm-up run; prep
// runs before each, untimed.
func minMedian(prep, f func(), runs int) (float64, float64) {
	t := make([]float64, runs)
	for r := -1; r < runs; r++ {
		prep()
		start := time.Now()
		f()
		if r >= 0 {
			t[r] = float64(time.Since(start).Nanoseconds())
		}
	}
	sort.Float64s(t)
	return t[0], t[runs/2]
}

func main() {
	runs := 3
	if len(os.Args) > 1 {
		runs, _ = strconv.Atoi(os.Args[1])
	}
	suffix := ""
	if p := runtime.GOMAXPROCS(0); p > 1 {
		suffix = fmt.Sprintf("/P%d", p)
	}
	ncpu := runtime.NumCPU()
	row := func(name string, prep, f func()) {
		mn, med := minMedian(prep, f, runs)
		fmt.Printf("Benchmark%s/go%s-%d\t%10d\t%10.0f ns/op\t(min of %d runs; median %.0f)\n", name, suffix, ncpu, 1, mn, runs, med)
	}
	none := func() {}
	var out int
	row("ParFib", none, func() { out = fibPar(fibN) })
	if out != fibSeq(fibN) {
		fmt.Println("ParFib: wrong result")
		os.Exit(1)
	}
	a := make([]int32, sortN)
	tmp := make([]int32, sortN)
	fill := func() {
		x := uint64(12345)
		for i := range a {
			x = x*6364136223846793005 + 1442695040888963407
			a[i] = int32(x >> 33)
		}
	}
	row("ParMergeSort", fill, func() { sortPar(a, tmp) })
	for i := 1; i < len(a); i++ {
		if a[i-1] > a[i] {
			fmt.Println("ParMergeSort: not sorted")
			os.Exit(1)
		}
	}
	row("Burst", none, burstRun)
	row("BurstYield", none, burstYieldRun)
}
