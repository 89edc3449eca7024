//go:build !linux

package rawconn

import "net"

// Wrap returns c: raw system calls are a Linux optimisation
// (rawconn_linux.go).
func Wrap(c net.Conn) net.Conn { return c }

// socketUnusable reports false: a socket's state is asked only on Linux
// (rawconn_linux.go).
func socketUnusable(net.Conn) bool { return false }
