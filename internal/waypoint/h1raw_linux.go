//go:build linux

package waypoint

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// rawIO reads and writes a TCP connection's socket (non-blocking, as Go
// makes every socket) with raw system calls, waiting for readiness in
// Go's network poller as net.Conn does, deadlines included. net.Conn's
// system calls go through the runtime's entersyscall, which wakes the
// runtime's monitor thread (sysmon) whenever it had gone to sleep because
// the process was idle: at 1,000 requests/s that is twice a request, and
// with the monitor's polling that follows, a fifth of the waypoint's CPU
// (perf). A read or write on a non-blocking socket cannot block, so it
// needs no entersyscall.
type rawIO struct {
	c  *net.TCPConn
	rc syscall.RawConn
}

// newRawIO returns c's raw reader and writer, or c itself when it is not a
// TCP connection.
func newRawIO(c net.Conn) (io.Reader, io.Writer) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c, c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c, c
	}
	r := &rawIO{c: tc, rc: rc}
	return r, r
}

func (r *rawIO) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var (
		n     int
		errno syscall.Errno
	)
	err := r.rc.Read(func(fd uintptr) bool {
		for {
			r1, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
			switch e {
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false // wait for the socket to be readable
			}
			n, errno = int(r1), e
			return true
		}
	})
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

func (r *rawIO) Write(p []byte) (int, error) {
	written := 0
	var errno syscall.Errno
	err := r.rc.Write(func(fd uintptr) bool {
		for written < len(p) {
			r1, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[written])), uintptr(len(p)-written))
			switch e {
			case 0:
				written += int(r1)
				continue
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false // wait for room
			}
			errno = e
			return true
		}
		return true
	})
	switch {
	case err != nil:
		return written, r.opError("write", err)
	case errno != 0:
		return written, r.opError("write", os.NewSyscallError("write", errno))
	}
	return written, nil
}

// opError wraps err as net.Conn's methods do.
func (r *rawIO) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: r.c.LocalAddr(), Addr: r.c.RemoteAddr(), Err: err}
}
