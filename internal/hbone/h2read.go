package hbone

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"

	"golang.org/x/net/http2"
)

// readLoop is the connection's reader goroutine: it dispatches every frame
// and never blocks on the socket's write side (see ctrlFrame).
func (c *h2Conn) readLoop() {
	defer close(c.done)
	for {
		f, err := c.rfr.ReadFrame()
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				c.streamError(se.StreamID, se.Code, se.Error())
				continue
			}
			var ce http2.ConnectionError
			if errors.As(err, &ce) {
				reason := c.rfr.ErrorDetail()
				if reason == nil {
					reason = err
				}
				c.fail(connError{http2.ErrCode(ce), reason.Error()})
				return
			}
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				err = io.EOF
			}
			c.fail(fmt.Errorf("reading from the connection: %w", err))
			return
		}
		if err := c.handle(f); err != nil {
			c.fail(err)
			return
		}
		if c.flooded.Load() {
			return // the connection is ending (enqueue): reading more only queues more
		}
	}
}

func (c *h2Conn) handle(f http2.Frame) error {
	if !c.gotSettings {
		sf, ok := f.(*http2.SettingsFrame)
		if !ok || sf.IsAck() {
			return connError{http2.ErrCodeProtocol, "the first frame is not SETTINGS"}
		}
	}
	switch f := f.(type) {
	case *http2.SettingsFrame:
		return c.onSettings(f)
	case *http2.PingFrame:
		if !f.IsAck() {
			c.enqueue(ctrlFrame{kind: ctrlPingAck, ping: f.Data})
		}
	case *http2.WindowUpdateFrame:
		return c.onWindowUpdate(f)
	case *http2.GoAwayFrame:
		c.onGoAway(f)
	case *http2.RSTStreamFrame:
		return c.onReset(f)
	case *http2.MetaHeadersFrame:
		if c.client {
			return c.onResponse(f)
		}
		return c.onRequest(f)
	case *http2.DataFrame:
		return c.onData(f)
	case *http2.PushPromiseFrame:
		return connError{http2.ErrCodeProtocol, "PUSH_PROMISE, which this endpoint does not accept"}
	}
	// PRIORITY and unknown frame types are ignored, as the protocol says.
	return nil
}

func (c *h2Conn) onSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	var tableSize uint32
	c.mu.Lock()
	err := f.ForeachSetting(func(s http2.Setting) error {
		if err := s.Valid(); err != nil {
			var ce http2.ConnectionError
			if errors.As(err, &ce) {
				return connError{http2.ErrCode(ce), "invalid setting " + s.String()}
			}
			return err
		}
		switch s.ID {
		case http2.SettingInitialWindowSize:
			delta := int64(s.Val) - c.peerInitWin
			c.peerInitWin = int64(s.Val)
			for _, st := range c.streams {
				if st.sendWin+delta > maxWindow {
					return connError{http2.ErrCodeFlowControl, "SETTINGS_INITIAL_WINDOW_SIZE overflows a stream's window"}
				}
				st.sendWin += delta
				st.wakeWriter()
			}
		case http2.SettingMaxConcurrentStreams:
			c.peerMaxConc = s.Val
		case http2.SettingHeaderTableSize:
			tableSize = s.Val + 1 // 0 means unchanged
		}
		return nil
	})
	c.mu.Unlock()
	if err != nil {
		return err
	}
	c.enqueue(ctrlFrame{kind: ctrlSettingsAck, n: tableSize})
	if !c.gotSettings {
		c.gotSettings = true
		close(c.readSettings)
	}
	return nil
}

func (c *h2Conn) onWindowUpdate(f *http2.WindowUpdateFrame) error {
	inc := int64(f.Increment)
	c.mu.Lock()
	defer c.mu.Unlock()
	if f.StreamID == 0 {
		if c.sendWin+inc > maxWindow {
			return connError{http2.ErrCodeFlowControl, "WINDOW_UPDATE overflows the connection window"}
		}
		wake := c.sendWin <= 0
		c.sendWin += inc
		if wake {
			for _, s := range c.streams {
				s.wakeWriter()
			}
		}
		return nil
	}
	s := c.streams[f.StreamID]
	if s == nil {
		if c.idleStreamLocked(f.StreamID) {
			return connError{http2.ErrCodeProtocol, "WINDOW_UPDATE on an idle stream"}
		}
		return nil
	}
	if s.sendWin+inc > maxWindow {
		c.mu.Unlock()
		c.streamError(f.StreamID, http2.ErrCodeFlowControl, "WINDOW_UPDATE overflows the stream window")
		c.mu.Lock()
		return nil
	}
	s.sendWin += inc
	s.wakeWriter()
	return nil
}

// idleStreamLocked reports whether id was never opened: frames on it are
// a connection error.
func (c *h2Conn) idleStreamLocked(id uint32) bool {
	if c.client {
		return id%2 == 1 && id >= c.nextID || id%2 == 0
	}
	return id%2 == 1 && id > c.lastPeerID
}

func (c *h2Conn) onGoAway(f *http2.GoAwayFrame) {
	c.mu.Lock()
	c.goawayRecv = true
	var refused []*h2Stream
	for id, s := range c.streams {
		if id > f.LastStreamID {
			refused = append(refused, s)
			delete(c.streams, id)
		}
	}
	idle := len(c.streams) == 0 && c.reserved == 0
	c.mu.Unlock()
	for _, s := range refused {
		s.connFailed(errRefusedStream)
	}
	if f.ErrCode != http2.ErrCodeNo {
		c.fail(peerGoAway{f.ErrCode, string(f.DebugData())})
		return
	}
	if idle {
		c.closeGracefully()
	}
}

func (c *h2Conn) onReset(f *http2.RSTStreamFrame) error {
	c.mu.Lock()
	s := c.streams[f.StreamID]
	if s == nil {
		idle := c.idleStreamLocked(f.StreamID)
		c.mu.Unlock()
		if idle {
			return connError{http2.ErrCodeProtocol, "RST_STREAM on an idle stream"}
		}
		return nil
	}
	c.mu.Unlock()
	var err error = streamReset{f.ErrCode}
	if f.ErrCode == http2.ErrCodeRefusedStream {
		err = errRefusedStream
	}
	s.peerReset(err)
	return nil
}

// streamError resets a stream for a stream-level protocol error.
func (c *h2Conn) streamError(id uint32, code http2.ErrCode, reason string) {
	c.mu.Lock()
	s := c.streams[id]
	c.mu.Unlock()
	if s != nil {
		s.abort(fmt.Errorf("HTTP/2 %v: %s", code, reason), code)
		return
	}
	c.enqueue(ctrlFrame{kind: ctrlReset, stream: id, code: code})
}

func (c *h2Conn) onData(f *http2.DataFrame) error {
	id := f.StreamID
	flow := int64(f.Length)
	c.mu.Lock()
	c.recvUsed += flow
	if c.recvUsed > connWindowSize {
		c.mu.Unlock()
		return connError{http2.ErrCodeFlowControl, "DATA beyond the connection's receive window"}
	}
	s := c.streams[id]
	if s == nil {
		idle := c.idleStreamLocked(id)
		c.mu.Unlock()
		if idle {
			return connError{http2.ErrCodeProtocol, "DATA on an idle stream"}
		}
		// A stream that ended: its data will never be read.
		c.credit(flow)
		return nil
	}
	c.mu.Unlock()
	if c.client && !s.gotHeaders {
		c.credit(flow)
		c.streamError(id, http2.ErrCodeProtocol, "DATA before the response HEADERS")
		return nil
	}
	s.receive(f.Data(), flow, f.StreamEnded())
	return nil
}

// onResponse handles a client stream's response HEADERS (or trailers).
func (c *h2Conn) onResponse(f *http2.MetaHeadersFrame) error {
	c.mu.Lock()
	s := c.streams[f.StreamID]
	idle := s == nil && c.idleStreamLocked(f.StreamID)
	c.mu.Unlock()
	if idle {
		return connError{http2.ErrCodeProtocol, "HEADERS on a stream the client never opened"}
	}
	if s == nil {
		return nil
	}
	if s.gotHeaders { // trailers
		if !f.StreamEnded() {
			c.streamError(f.StreamID, http2.ErrCodeProtocol, "trailers without END_STREAM")
			return nil
		}
		s.receive(nil, 0, true)
		return nil
	}
	code, err := strconv.Atoi(f.PseudoValue("status"))
	if err != nil || code < 100 || code > 999 {
		c.streamError(f.StreamID, http2.ErrCodeProtocol, "response without a valid :status")
		return nil
	}
	if code < 200 {
		return nil // informational: the real answer follows
	}
	s.gotHeaders = true
	s.setResponse(code)
	if f.StreamEnded() {
		s.receive(nil, 0, true)
	}
	return nil
}

// onRequest handles HEADERS from a client (server side).
func (c *h2Conn) onRequest(f *http2.MetaHeadersFrame) error {
	id := f.StreamID
	c.mu.Lock()
	if id%2 == 0 {
		c.mu.Unlock()
		return connError{http2.ErrCodeProtocol, "client opened an even-numbered stream"}
	}
	if id <= c.lastPeerID {
		s := c.streams[id]
		c.mu.Unlock()
		if s == nil {
			// Stream ids only grow: a lower one is closed or was skipped.
			return connError{http2.ErrCodeProtocol, fmt.Sprintf("HEADERS on stream %d, not above the last one opened (%d)", id, c.lastPeerID)}
		}
		if !f.StreamEnded() {
			c.streamError(id, http2.ErrCodeProtocol, "trailers without END_STREAM")
			return nil
		}
		s.receive(nil, 0, true)
		return nil
	}
	c.lastPeerID = id
	refuse := c.goawaySent || c.err != nil || len(c.streams) >= int(c.maxStreams)
	c.mu.Unlock()
	if c.handlers.Load() >= 4*int32(c.maxStreams) {
		// Streams the client reset leave the stream count at once, but
		// their handlers may still run: a client resetting streams as fast
		// as it opens them (CVE-2023-44487, "rapid reset") must not get
		// unbounded goroutines.
		return connError{http2.ErrCodeEnhanceYourCalm, "too many handlers still running for streams already reset"}
	}
	if refuse {
		c.enqueue(ctrlFrame{kind: ctrlReset, stream: id, code: http2.ErrCodeRefusedStream})
		return nil
	}
	if resp := checkConnect(f); resp != nil {
		c.respond(id, resp, f.StreamEnded())
		return nil
	}
	s := newH2Stream(c)
	s.id = id
	s.authority = f.PseudoValue("authority")
	s.ctx, s.cancel = context.WithCancel(c.ctx)
	if reg := f.RegularFields(); len(reg) > 0 {
		s.header = make(http.Header, len(reg))
		for _, hf := range reg {
			k := http.CanonicalHeaderKey(hf.Name)
			s.header[k] = append(s.header[k], hf.Value)
		}
	}
	c.mu.Lock()
	s.sendWin = c.peerInitWin
	c.streams[id] = s
	c.total++
	if c.idleTimer != nil {
		c.idleTimer.Stop()
	}
	c.mu.Unlock()
	if f.StreamEnded() {
		s.receive(nil, 0, true)
	}
	c.handlers.Add(1)
	go func() {
		defer c.handlers.Add(-1)
		c.onStream(s)
	}()
	return nil
}

// checkConnect returns the answer to a request that is not a CONNECT this
// server takes, or nil.
func checkConnect(f *http2.MetaHeadersFrame) *response {
	method := f.PseudoValue("method")
	if method != http.MethodConnect {
		return &response{
			status: http.StatusMethodNotAllowed,
			header: [][2]string{{"allow", http.MethodConnect}},
			body:   fmt.Sprintf("hbone: method %s not allowed; only CONNECT", method),
		}
	}
	if p := f.PseudoValue("protocol"); p != "" {
		return &response{status: http.StatusBadRequest, body: fmt.Sprintf("hbone: extended CONNECT (:protocol %q) is not supported", p)}
	}
	if f.PseudoValue("path") != "" || f.PseudoValue("scheme") != "" {
		return &response{status: http.StatusBadRequest, body: "hbone: a CONNECT request has no :path or :scheme"}
	}
	for _, hf := range f.RegularFields() {
		if connectionSpecific(hf.Name, hf.Value) {
			return &response{status: http.StatusBadRequest, body: fmt.Sprintf("hbone: connection-specific header %q is not allowed in HTTP/2", hf.Name)}
		}
	}
	if _, err := ParseAuthority(f.PseudoValue("authority")); err != nil {
		return &response{status: http.StatusBadRequest, body: "hbone: " + err.Error()}
	}
	return nil
}

// respond answers a request the reader refused by itself, and resets the
// stream if the client is still sending.
func (c *h2Conn) respond(id uint32, r *response, requestEnded bool) {
	r.header = append(r.header, [2]string{"content-type", "text/plain; charset=utf-8"})
	c.mu.Lock()
	// The body fits any window a peer may start with (the default is 64 KiB).
	fits := int64(len(r.body)) <= min(c.sendWin, c.peerInitWin)
	if fits {
		c.sendWin -= int64(len(r.body))
	} else {
		r.body = ""
	}
	c.mu.Unlock()
	frames := []ctrlFrame{{kind: ctrlResponse, stream: id, resp: r}}
	if r.body != "" {
		frames = append(frames, ctrlFrame{kind: ctrlResponseBody, stream: id, resp: r})
	}
	if !requestEnded {
		frames = append(frames, ctrlFrame{kind: ctrlReset, stream: id, code: http2.ErrCodeNo})
	}
	c.enqueue(frames...) // together: no other frame of the stream comes between
}

// connectionSpecific reports a header field HTTP/2 forbids (RFC 9113
// §8.2.2); name is lower-case.
func connectionSpecific(name, value string) bool {
	switch name {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
		return true
	case "te":
		return value != "trailers"
	}
	return false
}
