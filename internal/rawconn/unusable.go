package rawconn

import "net"

// IdleChecker is a connection that is not a TCP socket but can tell by
// itself whether it can still carry a request after sitting idle: an
// HBONE stream (a CONNECT stream inside an HTTP/2 connection) that its
// peer ended, reset or sent something unasked on, or whose HTTP/2
// connection failed or is going away. Its socket is shared with other
// streams and shows none of that, so only the stream's own state can.
// Such types implement IdleChecker rather than this package knowing them:
// they are built on it (internal/hbone imports rawconn), not the reverse.
//
// Unusable must look without reading or waiting: it runs as a pooled
// connection is taken for a request.
type IdleChecker interface {
	Unusable() bool
}

// Unusable reports whether an idle keep-alive connection c can no longer
// carry a request: its peer closed or reset it, or sent something
// unasked (a server's 408 before it closes). It looks without reading or
// waiting. Servers close idle connections after their own keep-alive
// timeout (Node.js after 5 s): a request written on such a connection
// meets a reset and, if it is not safe to send again (a POST), fails.
// A connection that implements IdleChecker answers for itself; a TCP
// connection is asked with recv(MSG_PEEK|MSG_DONTWAIT) on Linux
// (rawconn_linux.go). false for other connections, or when c cannot be
// asked.
func Unusable(c net.Conn) bool {
	if ic, ok := c.(IdleChecker); ok {
		return ic.Unusable()
	}
	return socketUnusable(c)
}
