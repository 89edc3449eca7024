package rawconn

import (
	"net"
	"testing"
)

// checkedConn is a connection that is not a socket and answers Unusable
// itself, as an HBONE stream does.
type checkedConn struct {
	net.Conn
	unusable bool
}

func (c *checkedConn) Unusable() bool { return c.unusable }

// TestUnusableAsksTheConnection: a connection that implements IdleChecker
// is taken at its word, on every platform; one that does not and is no
// socket is usable.
func TestUnusableAsksTheConnection(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if Unusable(&checkedConn{Conn: a}) {
		t.Error("a connection that says it is usable is called unusable")
	}
	if !Unusable(&checkedConn{Conn: a, unusable: true}) {
		t.Error("a connection that says it is unusable is called usable")
	}
	if Unusable(a) {
		t.Error("a connection that is neither TCP nor an IdleChecker is called unusable")
	}
}
