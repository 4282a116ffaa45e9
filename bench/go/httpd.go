// The Go reference for examples/httpd.c: the same HTTP/1.1 server with
// net/http (a goroutine per connection, keep-alive, pipelining, limits and
// the idle timeout are net/http's own), the same routes and byte-for-byte
// the same bodies: / a fixed 1 KiB page; /deep the same expression made
// from the same linear congruential sequence and evaluated by the same
// recursive descent; /sleep time.Sleep(1ms). bench/http.sh runs both under
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
	depth   = 40
	modulus = 1000003
)

var (
	page [1024]byte
	expr []byte
	lcg  uint64 = 1
)

func fillPage() {
	for i := range page {
		if i%64 == 63 {
			page[i] = '\n'
		} else {
			page[i] = byte('a' + (i%64+i/64)%26)
		}
	}
}

func nextRand() uint32 {
	lcg = lcg*6364136223846793005 + 1442695040888963407
	return uint32(lcg >> 33)
}

func genExpr() {
	const ops = "+-*"
	for d := 0; d < depth; d++ {
		num := 1 + nextRand()%999
		op := ops[nextRand()%3]
		expr = append(expr, fmt.Sprintf("%d%c(", num, op)...)
	}
	expr = append(expr, strconv.Itoa(int(1+nextRand()%999))...)
	for d := 0; d < depth; d++ {
		expr = append(expr, ')')
	}
}

const (
	tokNum = iota
	tokOp
	tokOpen
	tokClose
	tokEnd
	tokBad
)

type token struct {
	kind int
	op   byte
	len  uint8
	at   int      // where it starts in the expression, for error messages
	text [64]byte // a number's digits, as a lexer keeps its lexeme
}

type parser struct {
	s   []byte
	pos int
	tok token  // the lookahead: the next token, not yet taken
	err string // the first syntax error, "" if none
}

func (ps *parser) advance() {
	t := &ps.tok
	for ps.pos < len(ps.s) && ps.s[ps.pos] == ' ' {
		ps.pos++
	}
	t.len = 0
	t.at = ps.pos
	if ps.pos == len(ps.s) {
		t.kind = tokEnd
		return
	}
	c := ps.s[ps.pos]
	if c >= '0' && c <= '9' {
		t.kind = tokNum
		for ps.pos < len(ps.s) && ps.s[ps.pos] >= '0' && ps.s[ps.pos] <= '9' && int(t.len) < len(t.text) {
			t.text[t.len] = ps.s[ps.pos]
			t.len++
			ps.pos++
		}
		return
	}
	ps.pos++
	switch c {
	case '(':
		t.kind = tokOpen
	case ')':
		t.kind = tokClose
	case '+', '-', '*':
		t.kind = tokOp
	default:
		t.kind = tokBad
	}
	t.op = c
}

// syntaxError records the first syntax error, naming the token and its offset.
func (ps *parser) syntaxError(t *token, what string) {
	if ps.err == "" {
		text := string(t.op)
		if t.kind == tokNum {
			text = string(t.text[:t.len])
		}
		ps.err = fmt.Sprintf("%s at offset %d ('%s')", what, t.at, text)
	}
}

func apply(op byte, a, b int64) int64 {
	switch op {
	case '+':
		return (a + b) % modulus
	case '-':
		return (a - b + modulus) % modulus
	}
	return a * b % modulus
}

// factor := number | '(' expr ')'
func (ps *parser) factor() int64 {
	t := ps.tok // taken: the lookahead moves on
	ps.advance()
	if t.kind == tokNum {
		var v int64
		for i := 0; i < int(t.len); i++ {
			if v = v*10 + int64(t.text[i]-'0'); v >= modulus {
				v %= modulus
			}
		}
		return v
	}
	if t.kind == tokOpen {
		v := ps.expr()
		if ps.tok.kind != tokClose {
			ps.syntaxError(&t, "unclosed parenthesis")
		}
		ps.advance()
		return v
	}
	ps.syntaxError(&t, "expected a number or '('")
	return 0
}

// term := factor ('*' factor)*
func (ps *parser) term() int64 {
	v := ps.factor()
	for ps.tok.kind == tokOp && ps.tok.op == '*' {
		op := ps.tok
		ps.advance()
		if ps.tok.kind == tokEnd {
			ps.syntaxError(&op, "operator without a right operand")
		}
		v = apply(op.op, v, ps.factor())
	}
	return v
}

// expr := term (('+' | '-') term)*
func (ps *parser) expr() int64 {
	v := ps.term()
	for ps.tok.kind == tokOp && ps.tok.op != '*' {
		op := ps.tok
		ps.advance()
		if ps.tok.kind == tokEnd {
			ps.syntaxError(&op, "operator without a right operand")
		}
		v = apply(op.op, v, ps.term())
	}
	return v
}

// evalExpr evaluates expr: its value, or -1 on a syntax error (there is none).
func evalExpr() int64 {
	ps := parser{s: expr}
	ps.advance()
	v := ps.expr()
	if ps.tok.kind != tokEnd {
		ps.syntaxError(&ps.tok, "trailing input")
	}
	if ps.err != "" {
		return -1
	}
	return v
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
		n := copy(body[:], fmt.Sprintf("depth %d value %d\n", depth, evalExpr()))
		copy(body[n:], page[n:])
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
	genExpr()
	ln, err := net.Listen("tcp", "127.0.0.1:"+args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, "httpd:", err)
		os.Exit(1)
	}
	fmt.Printf("httpd (Go): listening on %s, %d workers, idle timeout %d ms; /deep: %d-byte expression, value %d\n",
		ln.Addr(), runtime.GOMAXPROCS(0), idle.Milliseconds(), len(expr), evalExpr())
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
