// Command floor is the smallest Go daemon that does what a minimal agent
// does from outside: it listens on a unix socket and answers HTTP GET
// /readyz. The idle benchmark measures it beside the agent as the floor a
// Go HTTP daemon has on the machine: its RSS is the runtime's own memory
// plus the pages of its binary the kernel has mapped.
//
//	floor SOCKET
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: floor SOCKET")
		os.Exit(2)
	}
	ln, err := net.Listen("unix", os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ready") })
	go http.Serve(ln, mux)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, os.Interrupt)
	<-stop
	ln.Close()
}
