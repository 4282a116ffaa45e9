// The Go reference for bench/deadline.c (bench/deadline.sh runs both):
//
//	deadline SelectTimerReset [ITERS]  a consumer selects on an unbuffered
//	    channel and a timer that never fires, t.Reset before each receive;
//	    a producer sends. ns per message.
//	deadline CancelTree [ITERS]  ITERS goroutines (default 100,000) each
//	    blocked on <-ctx.Done() of its own context.WithCancel(root); ns per
//	    goroutine from cancelling root until all have woken.
//
// Run with GOMAXPROCS=1, as gomem with one worker.
package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"
)

func selectTimerReset(n int) time.Duration {
	ch := make(chan int64)
	go func() {
		for i := int64(0); i < int64(n); i++ {
			ch <- i
		}
	}()
	t := time.NewTimer(time.Hour)
	t0 := time.Now()
	for i := int64(0); i < int64(n); i++ {
		t.Reset(time.Hour)
		select {
		case v := <-ch:
			if v != i {
				panic("out of order")
			}
		case <-t.C:
			panic("the timer fired")
		}
	}
	d := time.Since(t0)
	t.Stop()
	return d
}

func cancelTree(n int) time.Duration {
	root, cancel := context.WithCancel(context.Background())
	var parked, woken sync.WaitGroup
	parked.Add(n)
	woken.Add(n)
	cancels := make([]context.CancelFunc, n)
	for i := 0; i < n; i++ {
		ctx, c := context.WithCancel(root)
		cancels[i] = c
		go func() {
			parked.Done()
			<-ctx.Done()
			woken.Done()
		}()
	}
	parked.Wait()
	runtime.Gosched() // the last one blocks
	t0 := time.Now()
	cancel()
	woken.Wait()
	d := time.Since(t0)
	for _, c := range cancels {
		c()
	}
	return d
}

func main() {
	name := ""
	if len(os.Args) > 1 {
		name = os.Args[1]
	}
	n := 200000
	if name == "CancelTree" {
		n = 100000
	}
	if len(os.Args) > 2 {
		n, _ = strconv.Atoi(os.Args[2])
	}
	var d time.Duration
	switch name {
	case "SelectTimerReset":
		d = selectTimerReset(n)
	case "CancelTree":
		d = cancelTree(n)
	default:
		fmt.Fprintln(os.Stderr, "usage: deadline SelectTimerReset|CancelTree [iterations]")
		os.Exit(2)
	}
	fmt.Printf("Benchmark%s-%d\t%10d\t%10.2f ns/op\n", name, runtime.GOMAXPROCS(0), n, float64(d.Nanoseconds())/float64(n))
}
