//go:build linux

package rawconn

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// rawIO is a TCP connection whose Read and Write are raw system calls on
// its socket (non-blocking, as Go makes every socket), waiting for
// readiness in Go's network poller as net.Conn does, deadlines included.
// net.Conn's system calls go through the runtime's entersyscall, which
// wakes the runtime's monitor thread (sysmon) whenever it had gone to
// sleep because the process was idle: at 1,000 requests/s that is twice a
// request, and with the monitor's polling that follows, a fifth of the
// waypoint's CPU (perf). A read or write on a non-blocking socket cannot
// block, so it needs no entersyscall. Everything else (deadlines, Close,
// CloseWrite, addresses) is the TCP connection's own.
type rawIO struct {
	*net.TCPConn
	rc syscall.RawConn
	// The callbacks and their arguments and results, bound once: a
	// closure per call would be an allocation per read and write. Reads
	// and writes may run at once (one of each: bufio's).
	rp      []byte
	rn      int
	rerrno  syscall.Errno
	readFn  func(fd uintptr) bool
	wp      []byte
	wn      int
	werrno  syscall.Errno
	writeFn func(fd uintptr) bool
}

// Wrap returns c with raw reads and writes when it is a TCP connection,
// else c itself. At most one Read and one Write may run at once (as
// bufio and crypto/tls use a connection).
func Wrap(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	r := &rawIO{TCPConn: tc, rc: rc}
	r.readFn, r.writeFn = r.read, r.write
	return r
}

func (r *rawIO) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r.rp, r.rn, r.rerrno = p, 0, 0
	err := r.rc.Read(r.readFn)
	n, errno := r.rn, r.rerrno
	r.rp = nil
	switch {
	case err != nil:
		return 0, r.opError("read", err)
	case errno != 0:
		return 0, r.opError("read", os.NewSyscallError("read", errno))
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// read is the read callback: false means wait until the socket is
// readable.
func (r *rawIO) read(fd uintptr) bool {
	p := r.rp
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		r.rn, r.rerrno = int(n), e
		return true
	}
}

func (r *rawIO) Write(p []byte) (int, error) {
	r.wp, r.wn, r.werrno = p, 0, 0
	err := r.rc.Write(r.writeFn)
	n, errno := r.wn, r.werrno
	r.wp = nil
	switch {
	case err != nil:
		return n, r.opError("write", err)
	case errno != 0:
		return n, r.opError("write", os.NewSyscallError("write", errno))
	}
	return n, nil
}

// write is the write callback: false means wait until the socket has
// room.
func (r *rawIO) write(fd uintptr) bool {
	p := r.wp
	for r.wn < len(p) {
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[r.wn])), uintptr(len(p)-r.wn))
		switch e {
		case 0:
			r.wn += int(n)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			r.werrno = e
			return true
		}
	}
	return true
}

// opError wraps err as net.Conn's methods do.
func (r *rawIO) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: r.LocalAddr(), Addr: r.RemoteAddr(), Err: err}
}

// socketUnusable is Unusable for a TCP connection: its peer closed or
// reset it, or sent something unasked, as recv with
// MSG_PEEK|MSG_DONTWAIT sees without reading or waiting. false when c is
// not a TCP connection or cannot be asked.
func socketUnusable(c net.Conn) bool {
	var sc syscall.Conn
	switch v := c.(type) {
	case *rawIO:
		sc = v.TCPConn
	case *net.TCPConn:
		sc = v
	default:
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	unusable := false
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, _, errno := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case errno == syscall.EAGAIN || errno == syscall.EINTR:
		case errno != nil, n >= 0: // an error, the peer's FIN (0), or data
			unusable = true
		}
		return true // never wait
	})
	return unusable || err != nil
}
