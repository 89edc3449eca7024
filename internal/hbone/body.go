package hbone

import (
	"errors"
	"io"
	"sync"
)

// tlsRecordPayload is the most plaintext one TLS record carries.
const tlsRecordPayload = 16 << 10

// frameHeaderLen is the HTTP/2 frame header size.
const frameHeaderLen = 9

// recordPayload is the DATA payload that, with its frame header, fills one
// TLS record exactly.
const recordPayload = tlsRecordPayload - frameHeaderLen

// tailBufs holds the buffers a bodyPipe keeps a write's tail in.
var tailBufs = sync.Pool{New: func() any { b := make([]byte, recordPayload); return &b }}

// bodyPipe is a client stream's request body: [Conn.Write] feeds it, the
// HTTP/2 transport's body writer reads it and makes DATA frames of what it
// reads. Like io.Pipe, a Write hands its slice over and the transport copies
// from it directly, with no buffer of its own while idle. Unlike io.Pipe:
//
//   - Reads are capped so that a DATA frame, 9-byte header included, fills
//     whole TLS records. Uncapped, a 16 KiB read becomes a 16 KiB record
//     plus a 9-byte one: twice the records and write calls.
//   - Once the transport took some of a Write's bytes, the last, partial
//     frame's worth (less than one record's payload) is copied into a pooled
//     buffer and Write returns; the next read sends it together with the
//     start of the next Write. With io.Pipe
//     a read never spans two Writes, so every Write ended in a short frame
//     of its own: a 32 KiB Write made frames of 16375, 16375 and 18 bytes,
//     three TLS records and three write calls instead of two. The buffer goes
//     back to the pool as soon as the transport took its bytes, so an idle
//     stream holds none.
//
// Like a socket's send buffer, a Write may thus return before the
// transport took all of its bytes; if the stream then fails they are lost,
// and the error comes with the next Write.
type bodyPipe struct {
	wmu sync.Mutex // serializes Writes

	mu      sync.Mutex
	cond    sync.Cond // signaled on every change; one reader, one writer
	pend    []byte    // bytes of the blocked Write not yet taken
	tailBuf *[]byte   // pooled; holds tail while it is non-empty
	tail    []byte    // bytes of earlier Writes not yet taken, sent before pend
	werr    error     // write side closed: io.EOF or the abort error
	rerr    error     // read side closed by the transport
}

func newBodyPipe() *bodyPipe {
	b := &bodyPipe{}
	b.cond.L = &b.mu
	return b
}

// Read gives the transport up to len(p) bytes, capped to whole TLS records.
func (b *bodyPipe) Read(p []byte) (int, error) {
	if records := (len(p) + frameHeaderLen) / tlsRecordPayload; records > 0 {
		p = p[:records*tlsRecordPayload-frameHeaderLen]
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for {
		if b.rerr != nil {
			return 0, io.ErrClosedPipe
		}
		if b.werr != nil && !errors.Is(b.werr, io.EOF) {
			return 0, b.werr // aborted: what is buffered is dropped
		}
		if len(b.tail) > 0 || len(b.pend) > 0 {
			break
		}
		if b.werr != nil {
			return 0, b.werr // io.EOF: everything was taken
		}
		b.cond.Wait()
	}
	n := copy(p, b.tail)
	b.tail = b.tail[n:]
	if len(b.tail) == 0 {
		b.releaseTail()
	}
	m := copy(p[n:], b.pend)
	b.pend = b.pend[m:]
	if m > 0 {
		b.cond.Broadcast()
	}
	return n + m, nil
}

func (b *bodyPipe) releaseTail() {
	if b.tailBuf != nil {
		tailBufs.Put(b.tailBuf)
		b.tailBuf, b.tail = nil, nil
	}
}

// Close is the transport's: later Writes fail with io.ErrClosedPipe.
func (b *bodyPipe) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.rerr == nil {
		b.rerr = io.ErrClosedPipe
	}
	b.releaseTail()
	b.cond.Broadcast()
	return nil
}

// Write hands p to the transport. It returns once the transport took all
// of p, or all but a tail shorter than one record's payload, which it
// buffers.
func (b *bodyPipe) Write(p []byte) (int, error) {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.writeErr(); err != nil {
		return 0, err
	}
	if len(p) == 0 {
		return 0, nil
	}
	b.pend = p
	b.cond.Broadcast()
	for {
		if err := b.writeErr(); err != nil {
			n := len(p) - len(b.pend)
			b.pend = nil
			return n, err
		}
		if len(b.pend) == 0 {
			return len(p), nil
		}
		// Buffer the tail only while the transport is taking this Write's
		// bytes: a Write it does not read from at all (the stream ended,
		// flow control) blocks and fails as with io.Pipe instead of
		// vanishing into the buffer.
		if len(b.pend) < len(p) && len(b.tail)+len(b.pend) <= recordPayload {
			if b.tailBuf == nil {
				b.tailBuf = tailBufs.Get().(*[]byte)
				b.tail = (*b.tailBuf)[:0]
			} else if cap(b.tail)-len(b.tail) < len(b.pend) {
				b.tail = append((*b.tailBuf)[:0], b.tail...) // move to the front
			}
			b.tail = append(b.tail, b.pend...)
			b.pend = nil
			return len(p), nil
		}
		b.cond.Wait()
	}
}

func (b *bodyPipe) writeErr() error {
	if b.rerr != nil || b.werr != nil {
		return io.ErrClosedPipe
	}
	return nil
}

// CloseWrite ends the body: the transport reads what is buffered, then
// io.EOF (END_STREAM).
func (b *bodyPipe) CloseWrite() error {
	b.CloseWithError(io.EOF)
	return nil
}

// CloseWithError aborts the body: the transport's next read returns err
// (the first close wins, as with io.Pipe).
func (b *bodyPipe) CloseWithError(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.werr == nil {
		b.werr = err
	}
	b.cond.Broadcast()
}
