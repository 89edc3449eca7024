package waypoint

import (
	"context"
	"net"
)

// SetDialTCP makes p connect to endpoints without an identity through
// dial: the chaos tests cut those connections.
func (p *Proxy) SetDialTCP(dial func(ctx context.Context, network, addr string) (net.Conn, error)) {
	p.dialTCP = dial
}
