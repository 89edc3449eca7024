package hbone

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"
)

// ConnInfo describes an HBONE connection and its open streams, for admin
// pages.
type ConnInfo struct {
	// Local and Remote are the TCP addresses.
	Local  string `json:"local"`
	Remote string `json:"remote"`
	// Source is the client identity (for the pool, ours).
	Source string `json:"source"`
	// Peer is the other side's verified identity.
	Peer string `json:"peer"`
	// Accepted lists the server identities the pool accepts on this
	// connection (client side only).
	Accepted []string     `json:"accepted,omitempty"`
	Opened   time.Time    `json:"opened"`
	Streams  []StreamInfo `json:"streams"`
	// TotalStreams counts the streams ever served (server side only).
	TotalStreams uint64 `json:"totalStreams,omitempty"`
	// Draining: the server is shutting down and sent GOAWAY (server side
	// only).
	Draining bool `json:"draining,omitempty"`
	// Available is how many more streams the connection takes now; 0 once
	// the server sent GOAWAY or the stream cap is reached (client side
	// only).
	Available int `json:"available"`
}

// Snapshot describes the server's connections and their open streams,
// oldest first.
func (s *Server) Snapshot() []ConnInfo {
	s.init()
	type conn struct {
		sc *serverConn
		ci ConnInfo
	}
	s.mu.Lock()
	draining := s.down
	conns := make([]conn, 0, len(s.conns))
	for _, sc := range s.conns {
		if sc.total.Load() == 0 {
			continue // handshaking, or no stream yet: identity unknown
		}
		conns = append(conns, conn{sc, ConnInfo{
			Local: sc.raw.LocalAddr().String(), Remote: sc.raw.RemoteAddr().String(),
			Source: sc.peer.String(), Peer: sc.peer.String(),
			Opened: sc.opened, Streams: []StreamInfo{},
		}})
	}
	s.mu.Unlock()
	out := make([]ConnInfo, 0, len(conns))
	for _, c := range conns {
		sc, ci := c.sc, c.ci
		ci.TotalStreams = sc.total.Load()
		ci.Draining = draining
		sc.mu.Lock()
		for st := range sc.streams {
			ci.Streams = append(ci.Streams, st.info())
		}
		sc.mu.Unlock()
		sortStreams(ci.Streams)
		out = append(out, ci)
	}
	slices.SortFunc(out, func(a, b ConnInfo) int { return a.Opened.Compare(b.Opened) })
	return out
}

// Snapshot describes the pool's connections and their open streams,
// oldest first.
func (p *Pool) Snapshot() []ConnInfo {
	p.init()
	p.mu.Lock()
	var conns []*clientConn
	for key, e := range p.conns {
		e.conns = slices.DeleteFunc(e.conns, func(c *clientConn) bool { return c.cc.Err() != nil })
		if len(e.conns) == 0 && e.dialing == nil {
			delete(p.conns, key)
		}
		conns = append(conns, e.conns...)
	}
	p.mu.Unlock()
	out := make([]ConnInfo, 0, len(conns))
	for _, c := range conns {
		if c.cc.Err() != nil {
			continue
		}
		ci := ConnInfo{
			Local: c.raw.LocalAddr().String(), Remote: c.raw.RemoteAddr().String(),
			Source: c.key.src.String(), Peer: c.peer.String(),
			Accepted: strings.Fields(c.key.expected),
			Opened:   c.opened, Streams: []StreamInfo{},
			Available: c.cc.Available(),
		}
		c.mu.Lock()
		for s := range c.streams {
			ci.Streams = append(ci.Streams, StreamInfo{
				Authority: s.authority, Peer: c.peer.String(), Opened: s.opened,
				BytesIn: s.read.Load(), BytesOut: s.written.Load(),
			})
		}
		c.mu.Unlock()
		sortStreams(ci.Streams)
		out = append(out, ci)
	}
	slices.SortFunc(out, func(a, b ConnInfo) int { return a.Opened.Compare(b.Opened) })
	return out
}

func sortStreams(s []StreamInfo) {
	slices.SortFunc(s, func(a, b StreamInfo) int { return a.Opened.Compare(b.Opened) })
}

// AdminHandler serves, as JSON, the tunnels of a server and a pool:
// {"inbound": [...], "outbound": [...]}. Either may be nil.
func AdminHandler(srv *Server, pool *Pool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		out := struct {
			Inbound  []ConnInfo `json:"inbound"`
			Outbound []ConnInfo `json:"outbound"`
		}{Inbound: []ConnInfo{}, Outbound: []ConnInfo{}}
		if srv != nil {
			out.Inbound = srv.Snapshot()
		}
		if pool != nil {
			out.Outbound = pool.Snapshot()
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(out)
	})
}
