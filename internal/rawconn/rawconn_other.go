//go:build !linux

package rawconn

import "net"

// Wrap returns c: raw system calls are a Linux optimisation
// (rawconn_linux.go).
func Wrap(c net.Conn) net.Conn { return c }

// Unusable reports false: it cannot tell elsewhere than on Linux
// (rawconn_linux.go).
func Unusable(net.Conn) bool { return false }
