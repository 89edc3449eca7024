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
	s.mu.Lock()
	draining := s.down
	conns := make([]*h2Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	out := make([]ConnInfo, 0, len(conns))
	for _, c := range conns {
		ci, ok := c.info()
		if !ok {
			continue
		}
		ci.Source = ci.Peer
		ci.Draining = draining
		ci.Available = 0
		out = append(out, ci)
	}
	slices.SortFunc(out, func(a, b ConnInfo) int { return a.Opened.Compare(b.Opened) })
	return out
}

// Snapshot describes the pool's connections and their open streams,
// oldest first.
func (p *Pool) Snapshot() []ConnInfo {
	p.init()
	type keyed struct {
		key poolKey
		c   *h2Conn
	}
	p.mu.Lock()
	var conns []keyed
	for key, e := range p.conns {
		e.conns = slices.DeleteFunc(e.conns, (*h2Conn).dead)
		if len(e.conns) == 0 && e.dialing == nil {
			delete(p.conns, key)
		}
		for _, c := range e.conns {
			conns = append(conns, keyed{key, c})
		}
	}
	p.mu.Unlock()
	out := make([]ConnInfo, 0, len(conns))
	for _, k := range conns {
		ci, ok := k.c.info()
		if !ok {
			continue
		}
		ci.Source = k.key.src.String()
		ci.Accepted = strings.Fields(k.key.expected)
		ci.TotalStreams = 0
		out = append(out, ci)
	}
	slices.SortFunc(out, func(a, b ConnInfo) int { return a.Opened.Compare(b.Opened) })
	return out
}

// info describes a live connection; false once it failed or closed.
func (c *h2Conn) info() (ConnInfo, bool) {
	avail := c.available()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return ConnInfo{}, false
	}
	ci := ConnInfo{
		Local: c.raw.LocalAddr().String(), Remote: c.raw.RemoteAddr().String(),
		Peer: c.peer.String(), Opened: c.opened,
		Streams: make([]StreamInfo, 0, len(c.streams)), TotalStreams: c.total,
		Available: avail,
	}
	for _, s := range c.streams {
		ci.Streams = append(ci.Streams, s.info())
	}
	sortStreams(ci.Streams)
	return ci, true
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
