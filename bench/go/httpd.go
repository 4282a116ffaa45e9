// The Go reference for examples/httpd.c: the same HTTP/1.1 server with
// net/http (a goroutine per connection, keep-alive, pipelining, limits and
// the idle timeout are net/http's own), the same routes and byte-for-byte
// the same bodies: / a fixed 1 KiB page; /deep the same 16 nested
// template sections, each rendered in a 1000-byte buffer of its own frame;
// /sleep time.Sleep(1ms). bench/http.sh runs both under
// wrk.
//
//	httpd [-i IDLE_MS] PORT [GOMAXPROCS]
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

const (
	depth      = 16
	sectionBuf = 1000
)

var page [1024]byte

func fillPage() {
	for i := range page {
		if i%64 == 63 {
			page[i] = '\n'
		} else {
			page[i] = byte('a' + (i%64+i/64)%26)
		}
	}
}

// renderSection renders section level and those inside it into out, as
// examples/httpd.c does: each in a 1000-byte buffer of its own frame.
func renderSection(level int, out []byte) int {
	var buf [sectionBuf]byte
	n := copy(buf[:], "<div id=s")
	n += len(strconv.AppendInt(buf[n:n], int64(level), 10))
	n += copy(buf[n:], ">\n")
	if level+1 < depth {
		n += renderSection(level+1, buf[n:])
	} else {
		n += copy(buf[n:], "leaf\n")
	}
	n += copy(buf[n:], "</div>\n")
	return copy(out, buf[:n])
}

// deepBody fills body (1 KiB): "depth D bytes N\n", the rendered sections,
// then the rest of /'s page.
func deepBody(body []byte) {
	var text [sectionBuf]byte
	n := renderSection(0, text[:])
	h := copy(body, "depth ")
	h += len(strconv.AppendInt(body[h:h], depth, 10))
	h += copy(body[h:], " bytes ")
	h += len(strconv.AppendInt(body[h:h], int64(n), 10))
	h += copy(body[h:], "\n")
	h += copy(body[h:], text[:n])
	copy(body[h:], page[h:])
}

func handler(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	if r.Method != "GET" {
		h.Set("Allow", "GET")
		w.WriteHeader(http.StatusMethodNotAllowed)
		w.Write([]byte("method not allowed\n"))
		return
	}
	switch r.URL.Path {
	case "/":
		w.Write(page[:])
	case "/deep":
		var body [len(page)]byte
		deepBody(body[:])
		w.Write(body[:])
	case "/sleep":
		time.Sleep(time.Millisecond)
		w.Write([]byte("slept 1ms\n"))
	default:
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte("404 page not found\n"))
	}
}

func main() {
	args := os.Args[1:]
	idle := 30000 * time.Millisecond
	if len(args) >= 2 && args[0] == "-i" {
		ms, err := strconv.Atoi(args[1])
		if err != nil || ms <= 0 {
			fmt.Fprintln(os.Stderr, "httpd: -i wants a positive number of milliseconds")
			os.Exit(2)
		}
		idle = time.Duration(ms) * time.Millisecond
		args = args[2:]
	}
	if len(args) < 1 || len(args) > 2 {
		fmt.Fprintln(os.Stderr, "usage: httpd [-i IDLE_MS] PORT [GOMAXPROCS]")
		os.Exit(2)
	}
	if len(args) == 2 {
		n, _ := strconv.Atoi(args[1])
		if n > 0 {
			runtime.GOMAXPROCS(n)
		}
	}
	fillPage()
	ln, err := net.Listen("tcp", "127.0.0.1:"+args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, "httpd:", err)
		os.Exit(1)
	}
	fmt.Printf("httpd (Go): listening on %s, %d workers, idle timeout %d ms; /deep: %d sections\n",
		ln.Addr(), runtime.GOMAXPROCS(0), idle.Milliseconds(), depth)
	srv := &http.Server{Handler: http.HandlerFunc(handler), IdleTimeout: idle, ReadHeaderTimeout: idle,
		MaxHeaderBytes: 8192}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		srv.Close()
	}()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, "httpd:", err)
		os.Exit(1)
	}
}
