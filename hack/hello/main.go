// Command hello is the program inside berth's "hello" test image: a scratch
// image that holds this one static binary and nothing else.
//
// Run with arguments, it prints a greeting followed by its arguments, one per
// line, and exits 0. With -listen ADDR it also serves HTTP on ADDR: every
// request gets the same greeting (and the request path) back, which later
// tests use as the smallest possible server.
//
// It is built with CGO_ENABLED=0 by hack/mkimages.sh.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
)

const greeting = "Hello from berth!"

func main() {
	listen := flag.String("listen", "", "serve HTTP on `addr` (for example :8080) after greeting")
	flag.Parse()

	fmt.Println(greeting)
	for _, a := range flag.Args() {
		fmt.Println(a)
	}
	if *listen == "" {
		return
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s\npath: %s\n", greeting, r.URL.Path)
	})
	// Listen before saying so, so that a test which waits for the line
	// below can connect at once.
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "hello: %v\n", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "hello: listening on %s\n", ln.Addr())
	if err := http.Serve(ln, mux); err != nil {
		fmt.Fprintf(os.Stderr, "hello: %v\n", err)
		os.Exit(1)
	}
}
