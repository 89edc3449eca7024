package hbone

import (
	"errors"
	"io"
	"net"
	"sync"
)

// Copy buffers: a small one for reads while a connection is idle, a large
// pooled one while data flows. The large one holds exactly two DATA frames'
// payload: a full read written to a stream then makes two frames that fill
// two TLS records, where 32 KiB would make a third record (and write call)
// for the 18 bytes the frame headers displaced.
const (
	smallBufSize = 1 << 10
	largeBufSize = 2 * dataFramePayload
)

var (
	smallBufs = sync.Pool{New: func() any { b := make([]byte, smallBufSize); return &b }}
	largeBufs = sync.Pool{New: func() any { b := make([]byte, largeBufSize); return &b }}
)

// Copy copies src to dst until EOF or an error, like io.Copy, but holds
// only a small pooled buffer while src is idle and a 32 KiB pooled one (see
// largeBufSize)
// while reads fill the small one. It returns the bytes written and the
// first error other than io.EOF.
func Copy(dst io.Writer, src io.Reader) (int64, error) {
	small := smallBufs.Get().(*[]byte)
	defer smallBufs.Put(small)
	var (
		written int64
		large   *[]byte
	)
	defer func() {
		if large != nil {
			largeBufs.Put(large)
		}
	}()
	for {
		buf := *small
		if large != nil {
			buf = *large
		}
		n, rerr := src.Read(buf)
		if n > 0 {
			w, werr := dst.Write(buf[:n])
			written += int64(w)
			if werr != nil {
				return written, werr
			}
			if w != n {
				return written, io.ErrShortWrite
			}
		}
		switch {
		case large == nil && n == len(buf):
			large = largeBufs.Get().(*[]byte) // data is flowing
		case large != nil && n < len(buf)/4:
			largeBufs.Put(large) // trickle or idle: give it back
			large = nil
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				return written, nil
			}
			return written, rerr
		}
	}
}

// closeWriter is a connection whose write side can be closed alone.
type closeWriter interface {
	CloseWrite() error
}

// Splice copies in both directions between a and b until both directions
// end, carrying half-close: when one side's reads end, the other side's
// write side is closed (CloseWrite if it has one, else the whole
// connection). It returns the bytes copied a→b and b→a and the first
// error. After clean ends it does not close a or b; on an error in one
// direction it closes both (those that are io.Closers), so the other
// direction cannot hang.
func Splice(a, b io.ReadWriter) (aToB, bToA int64, err error) {
	errc := make(chan error, 1)
	abort := func() {
		for _, c := range []io.ReadWriter{a, b} {
			if cl, ok := c.(io.Closer); ok {
				_ = cl.Close()
			}
		}
	}
	go func() {
		var err error
		aToB, err = Copy(b, a)
		if err != nil {
			abort()
		}
		closeWrite(b)
		errc <- err
	}()
	var err2 error
	bToA, err2 = Copy(a, b)
	if err2 != nil {
		abort()
	}
	closeWrite(a)
	err1 := <-errc
	if err1 != nil {
		return aToB, bToA, err1
	}
	return aToB, bToA, err2
}

func closeWrite(w io.Writer) {
	switch c := w.(type) {
	case closeWriter:
		_ = c.CloseWrite()
	case net.Conn:
		_ = c.Close()
	}
}
