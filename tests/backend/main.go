// The backend: a small Go web service of the kind people put behind edgeproxy
// (standard library only; Go 1.19 as in Debian 12's golang-go).
//
//	go build -o backend main.go
//	./backend -addr 127.0.0.1:9001 -name a
//
// GET /               Hello from go @ <Host>   (any path not listed below)
// GET /health         OK
// GET /name           the -name flag
// GET /conn           the client's address (ip:port) as this server sees it
// ANY /echo           JSON: method, path, query, host, headers, remote, body_len, body_sha256
// GET /big?size=N     N bytes of a fixed pattern; &chunked=1 streams it chunked
// GET /slow?ms=N      answers "slow" after N ms
// GET /sse?n=3&ms=200 server-sent events, one every ms
// GET /ws             WebSocket handshake (RFC 6455), then echoes raw bytes until EOF
// GET /kill-mid       declares size bytes (default 1 MiB), sends half, drops the connection
package main

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"strconv"
	"strings"
	"time"
)

var name = flag.String("name", "go", "what /name answers")

func main() {
	addr := flag.String("addr", "127.0.0.1:8081", "listen address")
	flag.Parse()

	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "Hello from go @ %s", r.Host)
	})
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "OK") })
	mux.HandleFunc("/name", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, *name) })
	mux.HandleFunc("/conn", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.RemoteAddr) })
	mux.HandleFunc("/echo", echo)
	mux.HandleFunc("/big", big)
	mux.HandleFunc("/slow", slow)
	mux.HandleFunc("/sse", sse)
	mux.HandleFunc("/ws", websocket)
	mux.HandleFunc("/kill-mid", killMid)

	log.Printf("backend %s listening on %s", *name, *addr)
	log.Fatal(http.ListenAndServe(*addr, mux))
}

func intParam(r *http.Request, key string, def int) int {
	if n, err := strconv.Atoi(r.URL.Query().Get(key)); err == nil && n >= 0 {
		return n
	}
	return def
}

// echo reads the whole body (this is when Go answers "Expect: 100-continue")
// and describes the request it received.
func echo(w http.ResponseWriter, r *http.Request) {
	h := sha256.New()
	n, err := io.Copy(h, r.Body)
	if err != nil {
		http.Error(w, "reading the body: "+err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"method":      r.Method,
		"path":        r.URL.Path,
		"query":       r.URL.RawQuery,
		"host":        r.Host,
		"headers":     r.Header, // canonical names, e.g. "X-Forwarded-For"
		"remote":      r.RemoteAddr,
		"body_len":    n,
		"body_sha256": hex.EncodeToString(h.Sum(nil)),
	})
}

// pattern calls emit with the pattern in 64 KiB blocks: block i is sha256("i")
// repeated, so a lost, repeated or shifted block changes the digest of the whole.
func pattern(size int, emit func([]byte) error) error {
	for i := 0; size > 0; i++ {
		sum := sha256.Sum256([]byte(strconv.Itoa(i)))
		block := bytes.Repeat(sum[:], 2048)
		if size < len(block) {
			block = block[:size]
		}
		if err := emit(block); err != nil {
			return err
		}
		size -= len(block)
	}
	return nil
}

func big(w http.ResponseWriter, r *http.Request) {
	size := intParam(r, "size", 1<<20)
	w.Header().Set("Content-Type", "application/octet-stream")
	chunked := r.URL.Query().Get("chunked") == "1"
	if !chunked {
		w.Header().Set("Content-Length", strconv.Itoa(size))
	}
	flusher, _ := w.(http.Flusher)
	pattern(size, func(b []byte) error {
		_, err := w.Write(b)
		if chunked && flusher != nil {
			flusher.Flush() // no Content-Length + Flush = Transfer-Encoding: chunked
		}
		return err
	})
}

func slow(w http.ResponseWriter, r *http.Request) {
	select {
	case <-time.After(time.Duration(intParam(r, "ms", 1000)) * time.Millisecond):
		io.WriteString(w, "slow\n")
	case <-r.Context().Done(): // the client (or proxy) went away
	}
}

func sse(w http.ResponseWriter, r *http.Request) {
	n, pause := intParam(r, "n", 3), time.Duration(intParam(r, "ms", 200))*time.Millisecond
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	for i := 0; i < n; i++ {
		if i > 0 {
			time.Sleep(pause)
		}
		fmt.Fprintf(w, "id: %d\ndata: event %d\n\n", i, i)
		w.(http.Flusher).Flush()
	}
}

// websocket does the RFC 6455 handshake by hand, then echoes raw bytes (it does
// not decode frames: enough to test a tunnel) until the client closes.
func websocket(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("Sec-WebSocket-Key")
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") || key == "" {
		http.Error(w, "expected a WebSocket upgrade", http.StatusBadRequest)
		return
	}
	conn, rw, err := w.(http.Hijacker).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	fmt.Fprintf(rw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"+
		"Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
		base64.StdEncoding.EncodeToString(sum[:]))
	rw.Flush()
	io.Copy(conn, rw.Reader) // rw.Reader holds anything that came with the handshake
}

// killMid promises size bytes, sends half, then closes the TCP connection.
func killMid(w http.ResponseWriter, r *http.Request) {
	size := intParam(r, "size", 1<<20)
	w.Header().Set("Content-Length", strconv.Itoa(size))
	w.Write(bytes.Repeat([]byte("x"), size/2))
	w.(http.Flusher).Flush()
	if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
		conn.Close()
	}
}
