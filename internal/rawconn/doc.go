// Package rawconn makes a TCP connection's reads and writes raw system
// calls on its non-blocking socket, still waiting for readiness in Go's
// network poller: the proxies' hot connections then do not wake the Go
// runtime's monitor thread on every read and write (see rawconn_linux.go).
// Elsewhere than Linux it changes nothing.
//
// It also tells whether an idle pooled connection can still carry a
// request (Unusable): a TCP socket is asked on Linux; a connection that is
// not a socket, such as an HBONE stream, answers for itself (IdleChecker).
package rawconn
