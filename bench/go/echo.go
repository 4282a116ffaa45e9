// The Go reference for examples/echo.c: a TCP echo server on 127.0.0.1
// with a goroutine per connection, and a load generator (this program run
// again as "client") with a goroutine per connection, 32-byte requests,
// each echo checked. Same arguments and output format.
package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func peakRSS() int {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			n, _ := strconv.Atoi(strings.Fields(l)[1])
			return n
		}
	}
	return 0
}

func raiseLimit() {
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil {
		rl.Cur = rl.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
}

func client(addr string, nconn int, seconds float64, maxReq int) {
	var requests, errors, connected int64
	var wg sync.WaitGroup
	var startNs int64 // when every client had connected: the measured time starts then
	for i := 0; i < nconn; i++ {
		wg.Add(1)
		go func(id int) {
			defer wg.Done()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				atomic.AddInt64(&errors, 1)
				return
			}
			defer c.Close()
			atomic.AddInt64(&connected, 1)
			for atomic.LoadInt64(&connected)+atomic.LoadInt64(&errors) < int64(nconn) {
				time.Sleep(time.Millisecond)
			}
			atomic.CompareAndSwapInt64(&startNs, 0, time.Now().UnixNano())
			deadline := time.Unix(0, atomic.LoadInt64(&startNs)).Add(time.Duration(seconds * float64(time.Second)))
			back := make([]byte, 32)
			done := 0
			for (maxReq == 0 || done < maxReq) && time.Now().Before(deadline) {
				msg := []byte(fmt.Sprintf("%010d:%020d", id, done))
				if _, err := c.Write(msg[:32]); err != nil {
					break
				}
				if _, err := io.ReadFull(c, back); err != nil || !bytes.Equal(back, msg[:32]) {
					atomic.AddInt64(&errors, 1)
					break
				}
				done++
			}
			atomic.AddInt64(&requests, int64(done))
		}(i)
	}
	wg.Wait()
	dt := time.Since(time.Unix(0, atomic.LoadInt64(&startNs))).Seconds()
	fmt.Printf("clients: %d connections, %d requests in %.2f s: %.0f requests/s, %d errors, peak RSS %d KiB\n",
		connected, requests, dt, float64(requests)/dt, errors, peakRSS())
	if errors != 0 || connected != int64(nconn) {
		os.Exit(1)
	}
}

func main() {
	raiseLimit()
	if len(os.Args) > 1 && os.Args[1] == "client" {
		n, _ := strconv.Atoi(os.Args[3])
		s, _ := strconv.ParseFloat(os.Args[4], 64)
		m, _ := strconv.Atoi(os.Args[5])
		client(os.Args[2], n, s, m)
		return
	}
	nconn, seconds, maxReq := 1000, 2.0, 0
	if len(os.Args) > 1 {
		nconn, _ = strconv.Atoi(os.Args[1])
	}
	if len(os.Args) > 2 {
		seconds, _ = strconv.ParseFloat(os.Args[2], 64)
	}
	if len(os.Args) > 3 {
		maxReq, _ = strconv.Atoi(os.Args[3])
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	rss0 := peakRSS()
	cmd := exec.Command(os.Args[0], "client", ln.Addr().String(), strconv.Itoa(nconn),
		strconv.FormatFloat(seconds, 'f', -1, 64), strconv.Itoa(maxReq))
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		panic(err)
	}
	var served int64
	var wg sync.WaitGroup
	for i := 0; i < nconn; i++ {
		c, err := ln.Accept()
		if err != nil {
			panic(err)
		}
		wg.Add(1)
		go func(c net.Conn) {
			defer wg.Done()
			buf := make([]byte, 512)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					if _, werr := c.Write(buf[:n]); werr != nil {
						break
					}
				}
				if err != nil {
					break
				}
			}
			c.Close()
			atomic.AddInt64(&served, 1)
		}(c)
	}
	ln.Close()
	wg.Wait()
	cerr := cmd.Wait()
	rss := peakRSS()
	fmt.Printf("server: %d connections served by as many goroutines, peak RSS %d KiB (%.0f bytes per connection over the start)\n",
		served, rss, float64(rss-rss0)*1024/float64(nconn))
	if cerr != nil || served != int64(nconn) {
		fmt.Println("echo: FAILED")
		os.Exit(1)
	}
	fmt.Println("echo: ok")
}
