// Package hbone implements HBONE, the mesh's tunnel: one HTTP/2 CONNECT
// stream per proxied TCP connection, over TLS 1.3 with mutual
// authentication by SPIFFE identity and ALPN h2 (Istio ambient's wire
// protocol; see ARCHITECTURE.md "Wire protocol (HBONE)").
//
// [Server] terminates tunnels (port 15008): it verifies the client's
// certificate against the trust bundle, accepts only CONNECT with an
// :authority of ip:port, [ipv6]:port or hostname:port, and hands each
// stream, with the peer's identity, to a [Handler]. [Pool] originates
// them: HTTP/2 connections pooled per (source identity, destination
// address, accepted destination identities), the server's SAN checked
// against that set, the forwarded, baggage and traceparent headers set from
// the [Request].
//
// # HTTP/2
//
// The HTTP/2 layer is CONNECT-only and built on golang.org/x/net/http2's
// Framer and hpack rather than net/http's server and transport: a stream
// set-up is one write by the caller and one wake-up on each side (the
// server's frame reader starts the handler; the client's wakes the
// dialer), where net/http needs about six goroutine hand-offs per CONNECT;
// an idle stream holds no buffer at all. Each connection has one reader
// goroutine, which never writes to the socket: the control frames it must
// send (SETTINGS and PING acks, resets, answers to requests it refuses)
// are queued for the connection's flusher, so two peers with full socket
// buffers cannot deadlock each other. Writes are a group commit: a writer
// encodes its frames into the connection's batch and, when no other is
// writing, writes the batch itself (its own and at most one more, then a
// goroutine takes over); otherwise it returns at once and its frames go
// out in the active flusher's next socket write — under load many
// streams' frames share one TLS record and one system call. Data goes in
// DATA frames of 16375 bytes, each filling one TLS record.
//
// # Half-close
//
// Either direction ends on its own, as with TCP's shutdown(SHUT_WR): a
// client's [Conn.CloseWrite] or a handler's [Stream.CloseWrite] sends
// END_STREAM, the other side reads io.EOF after the data sent, and the
// opposite direction stays open. When the handler returns, the server's
// direction ends and, if the client is still sending, the stream is reset
// with NO_ERROR (RFC 9113 §8.1). [Splice] carries half-close both ways
// between a stream and a TCP connection.
//
// # Memory
//
// An idle stream holds no buffer: received data waits in pooled chunks
// only until it is read, and frames are gathered in a pooled buffer only
// while they are written. Copies use a 32 KiB buffer from a pool only
// while data flows; an idle stream's copy loop holds a 1 KiB buffer (see
// [Copy]).
package hbone
