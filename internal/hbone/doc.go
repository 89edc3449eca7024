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
// # Half-close
//
// A client's [Conn.CloseWrite] ends the request body (END_STREAM); the
// server's handler reads io.EOF and may go on writing, and the client reads
// everything the handler writes until it returns. A server handler's
// [Stream.CloseWrite] ends the response: the client reads io.EOF after the
// data written (END_STREAM goes out when the handler returns, which it
// should do promptly). HTTP/2 would allow the server's direction to close
// while the client's stays open, but Go's HTTP/2 server cannot express it:
// ending the response also resets the request side (RST_STREAM NO_ERROR).
// So when a handler half-closes first, its reads return io.EOF, whatever
// the client sends afterwards is discarded and the client's writes fail
// with [ErrStreamClosed] — like a TCP peer that closed, not one that shut
// down its write side. When the client half-closes first, both directions
// are carried in full. [Splice] carries half-close both ways between a
// stream and a TCP connection.
//
// # Memory
//
// Copies use 32 KiB buffers from a pool only while data flows; an idle
// stream's copy loop holds a 1 KiB buffer (see [Copy]). The server
// advertises the minimum HTTP/2 frame size (16 KiB) because the client
// transport keeps a scratch buffer of that size per open stream.
package hbone
