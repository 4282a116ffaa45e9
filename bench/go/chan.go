// Channel throughput, the Go reference for bench/chan.c: one producer and
// one consumer over a buffered channel (cap 128) of 8-byte values; ns per
// message. With GOMAXPROCS=1 both run on one P; with 2 they may run on two.
// With GOMAXPROCS=1 also unbuffered ping-pong round trips.
package main

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"time"
)

func once(n int) float64 {
	ch := make(chan int64, 128)
	done := make(chan int64)
	t0 := time.Now()
	go func() {
		var s int64
		for v := range ch {
			s += v
		}
		done <- s
	}()
	for i := 0; i < n; i++ {
		ch <- int64(i)
	}
	close(ch)
	<-done
	return float64(time.Since(t0).Nanoseconds()) / float64(n)
}

func pingpong(n int) float64 {
	ping, pong := make(chan int64), make(chan int64)
	go func() {
		for v := range ping {
			pong <- v + 1
		}
	}()
	t0 := time.Now()
	var v int64
	for i := 0; i < n; i++ {
		ping <- v
		v = <-pong
	}
	close(ping)
	return float64(time.Since(t0).Nanoseconds()) / float64(n)
}

func minMedian(f func(int) float64, n, runs int) (float64, float64) {
	r := make([]float64, runs)
	f(n / 10)
	for i := range r {
		r[i] = f(n)
	}
	sort.Float64s(r)
	return r[0], r[runs/2]
}

func main() {
	runs, n := 5, 2000000
	if len(os.Args) > 1 {
		runs, _ = strconv.Atoi(os.Args[1])
	}
	if runtime.GOMAXPROCS(0) == 1 {
		mn, md := minMedian(pingpong, 1000000, runs)
		fmt.Printf("BenchmarkChanPingPong/roundtrip-go\t1000000\t%.2f ns/op\t(min of %d runs; median %.2f)\n", mn, runs, md)
	}
	r := make([]float64, runs)
	for i := range r {
		r[i] = once(n)
	}
	sort.Float64s(r)
	fmt.Printf("BenchmarkChanBuffered/procs=%d-go\t%d\t%.2f ns/op\t(min of %d runs; median %.2f)\n",
		runtime.GOMAXPROCS(0), n, r[0], runs, r[runs/2])
}
