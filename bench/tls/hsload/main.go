// hsload: full-handshake load generator for bench/tls (Go standard library only).
//
// By default every connection is a brand-new TLS 1.3 handshake. The tls.Config has no
// ClientSessionCache, so the client never stores a ticket and its ClientHello
// never carries a pre_shared_key extension: the server cannot resume, whatever
// tickets it sends. Each connection is checked anyway: ConnectionState().Version
// must be TLS 1.3 and DidResume must be false; violations are counted and the
// harness fails the run if there are any. After the handshake the client sends
// one "GET / HTTP/1.1" with "Connection: close", reads to EOF and counts 200s.
//
// -resume: the client keeps a session cache (one per connection loop, so each
// loop resumes the session its previous connection got) and offers the ticket;
// connections that did resume are counted in "reused", the others in "full";
// the harness checks the share. The first connection of each loop is full.
//
// -names FILE: SNI rotates over the names in FILE (one per line), one name per
// connection in turn; the Host header follows the SNI. Every connection checks
// that the leaf the server presented names the SNI (exactly or by a wildcard)
// and counts those that do not in "wrong_name".
//
// Bounded: -c connections in flight (closed loop), stops after -d or after -n
// connections in total, whichever comes first. Prints one JSON line.
package main

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"flag"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type result struct {
	Conns      int64   `json:"conns"`
	OK         int64   `json:"ok"`
	Non200     int64   `json:"non200"`
	Reused     int64   `json:"reused"`
	Full       int64   `json:"full"`
	NotTLS13   int64   `json:"not_tls13"`
	WrongName  int64   `json:"wrong_name"`
	Errors     int64   `json:"errors"`
	Elapsed    float64 `json:"elapsed"`
	Cipher     string  `json:"cipher"`
	FirstError string  `json:"first_error"`
}

func main() {
	addr := flag.String("addr", "127.0.0.1:443", "host:port to connect to")
	sni := flag.String("sni", "localhost", "server name (SNI and Host header)")
	conc := flag.Int("c", 16, "connections in flight")
	dur := flag.Duration("d", 10*time.Second, "duration")
	maxConns := flag.Int64("n", 10000000, "stop after this many connections in total")
	resume := flag.Bool("resume", false, "keep a session cache per connection loop and resume")
	namesFile := flag.String("names", "", "file with server names (one per line) to rotate the SNI over")
	flag.Parse()
	names := []string{*sni}
	if *namesFile != "" {
		data, err := os.ReadFile(*namesFile)
		if err != nil {
			os.Stderr.WriteString("hsload: " + err.Error() + "\n")
			os.Exit(2)
		}
		names = names[:0]
		for _, n := range strings.Split(string(data), "\n") {
			if n = strings.TrimSpace(n); n != "" {
				names = append(names, n)
			}
		}
		if len(names) == 0 {
			os.Stderr.WriteString("hsload: no names in " + *namesFile + "\n")
			os.Exit(2)
		}
	}
	var next uint64
	if *conc < 1 || *conc > 1024 || *dur <= 0 || *dur > 10*time.Minute {
		os.Stderr.WriteString("hsload: bad -c or -d\n")
		os.Exit(2)
	}

	cfg := &tls.Config{
		ServerName:         *sni,
		InsecureSkipVerify: true, // the chain is checked by the harness with curl; CertificateVerify is still checked
		MinVersion:         tls.VersionTLS13,
		MaxVersion:         tls.VersionTLS13,
		ClientSessionCache: nil, // no resumption unless -resume: every handshake is a full one
	}
	reqs := make([][]byte, len(names))
	for i, n := range names {
		reqs[i] = []byte("GET / HTTP/1.1\r\nHost: " + n + "\r\nConnection: close\r\n\r\n")
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second}

	var res result
	var started int64
	var mu sync.Mutex
	var cipher uint16
	fail := func(err error) {
		atomic.AddInt64(&res.Errors, 1)
		mu.Lock()
		if res.FirstError == "" {
			res.FirstError = err.Error()
		}
		mu.Unlock()
	}

	t0 := time.Now()
	deadline := t0.Add(*dur)
	var wg sync.WaitGroup
	for i := 0; i < *conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 32*1024)
			loopCfg := cfg.Clone()
			if *resume {
				loopCfg.ClientSessionCache = tls.NewLRUClientSessionCache(len(names) + 1)
			}
			for time.Now().Before(deadline) && atomic.AddInt64(&started, 1) <= *maxConns {
				i := int((atomic.AddUint64(&next, 1) - 1) % uint64(len(names)))
				name, req := names[i], reqs[i]
				loopCfg.ServerName = name
				c, err := tls.DialWithDialer(dialer, "tcp", *addr, loopCfg)
				if err != nil {
					fail(err)
					time.Sleep(time.Millisecond)
					continue
				}
				c.SetDeadline(time.Now().Add(10 * time.Second))
				st := c.ConnectionState()
				atomic.AddInt64(&res.Conns, 1)
				if st.DidResume {
					atomic.AddInt64(&res.Reused, 1)
				} else {
					atomic.AddInt64(&res.Full, 1)
					// a resumed TLS 1.3 session carries no certificate; a full one must name the SNI
					if len(st.PeerCertificates) == 0 || st.PeerCertificates[0].VerifyHostname(name) != nil {
						atomic.AddInt64(&res.WrongName, 1)
					}
				}
				if st.Version != tls.VersionTLS13 {
					atomic.AddInt64(&res.NotTLS13, 1)
				}
				if cipher == 0 {
					mu.Lock()
					cipher = st.CipherSuite
					mu.Unlock()
				}
				if _, err := c.Write(req); err != nil {
					fail(err)
					c.Close()
					continue
				}
				br := bufio.NewReaderSize(c, 4096)
				line, err := br.ReadString('\n')
				if err == nil {
					_, err = io.CopyBuffer(io.Discard, br, buf)
				}
				c.Close()
				if err != nil && !strings.Contains(err.Error(), "close_notify") {
					fail(err)
					continue
				}
				if strings.HasPrefix(line, "HTTP/1.1 200") || strings.HasPrefix(line, "HTTP/1.0 200") {
					atomic.AddInt64(&res.OK, 1)
				} else {
					atomic.AddInt64(&res.Non200, 1)
				}
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(t0).Seconds()
	res.Cipher = tls.CipherSuiteName(cipher)
	json.NewEncoder(os.Stdout).Encode(&res)
}
