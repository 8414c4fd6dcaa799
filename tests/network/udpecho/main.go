// Command udpecho answers every UDP datagram it receives on the address
// given as its argument with the same bytes. The network tests build it
// statically and run it in a busybox container, whose nc has no UDP mode.
package main

import (
	"log"
	"net"
	"os"
)

func main() {
	if len(os.Args) != 2 {
		log.Fatal("usage: udpecho ADDR")
	}
	c, err := net.ListenPacket("udp4", os.Args[1])
	if err != nil {
		log.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			log.Fatal(err)
		}
		if _, err := c.WriteTo(buf[:n], from); err != nil {
			log.Print(err)
		}
	}
}
