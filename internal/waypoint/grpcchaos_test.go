package waypoint_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/meshway/meshway/internal/chaos"
	"github.com/meshway/meshway/internal/hbone"
	"github.com/meshway/meshway/internal/identity"
	"github.com/meshway/meshway/internal/model"
	"github.com/meshway/meshway/internal/waypoint"
)

// echoService answers grpc.testing's unary call with its payload, or with
// the status asked, and its full-duplex call with each message's payload.
type echoService struct {
	testpb.UnimplementedTestServiceServer
}

func (echoService) UnaryCall(_ context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	if s := req.GetResponseStatus(); s.GetCode() != 0 {
		return nil, status.Error(codes.Code(s.GetCode()), s.GetMessage())
	}
	return &testpb.SimpleResponse{Payload: req.GetPayload()}, nil
}

func (echoService) FullDuplexCall(stream grpc.BidiStreamingServer[testpb.StreamingOutputCallRequest, testpb.StreamingOutputCallResponse]) error {
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: req.GetPayload()}); err != nil {
			return err
		}
	}
}

// TestChaosGRPC sends gRPC through the waypoint (HTTP/2 cleartext on both
// sides, a grpc port): unary calls with payloads up to 64 KiB, some asking
// for an error status (carried in trailers), and full-duplex streams of up
// to 20 messages, while clients cancel calls mid-way, the clients'
// connections to the waypoint and the waypoint's to the backend are cut
// and the configuration is swapped.
// Every call must end within its deadline; an answer must be the payload
// sent, or the status asked; a call may fail only by its own cancel or a
// cut; nothing may be left running.
func TestChaosGRPC(t *testing.T) {
	backend := startEchoGRPC(t)
	w := func() *model.Waypoint { return ratingsGRPC(model.Endpoint{Address: backend}) }
	proxy := &waypoint.Proxy{Logf: t.Logf}
	up := &chaos.Dialer{}
	proxy.SetDialTCP(up.DialContext)
	addr := servePlainFor(t, proxy, w(), ratingsVIP)
	// The waypoint's h2c connections to the backend are cut too: its
	// HTTP/2 transport notices at once (its reader fails), so the cuts'
	// grace without a seen check covers the calls they fail.
	runGRPCChaos(t, proxy, w, &upstreamCuts{up, nil}, func(down *chaos.Dialer, held *heldConns) grpc.DialOption {
		return grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return held.hold(down.DialContext(ctx, "tcp", addr))
		})
	}, nil)
}

// TestChaosGRPCOverHBONE is TestChaosGRPC with HBONE on both sides: each
// client's gRPC connection is a tunnel to the waypoint, which reaches the
// backend through its node; the waypoint's tunnels to the node are cut
// too.
func TestChaosGRPCOverHBONE(t *testing.T) {
	m := newManager(t)
	up := &chaos.Dialer{}
	proxy, pool, w, wpAddr := grpcOverHBONE(t, m, up)
	src := source(t, m, sleepID)
	var pools []*hbone.Pool
	runGRPCChaos(t, proxy, w, &upstreamCuts{up, seenBy(pool)}, func(down *chaos.Dialer, held *heldConns) grpc.DialOption {
		clients := &hbone.Pool{Bundle: m.Bundle(), DialContext: down.DialContext}
		pools = append(pools, clients)
		return grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			// A tunnel's LocalAddr is its TCP connection's.
			return held.hold(clients.Dial(ctx, hbone.Request{Source: src, Addr: wpAddr, Authority: ratingsVIP, Expected: []spiffeid.ID{waypointID}}))
		})
	}, func() { // the tunnels' connections end with their pools
		for _, p := range append(pools, pool) {
			_ = p.Close()
		}
	})
}

// grpcOverHBONE serves the echo gRPC backend behind its node's HBONE
// server and a waypoint reaching it through a pool dialing with up; it
// returns the proxy, its pool, the configuration it serves and its HBONE
// address.
func grpcOverHBONE(t *testing.T, m *identity.Manager, up *chaos.Dialer) (*waypoint.Proxy, *hbone.Pool, func() *model.Waypoint, string) {
	t.Helper()
	onNode := serveBackendNode(t, m, startEchoGRPC(t))
	pool := &hbone.Pool{Bundle: m.Bundle(), DialContext: up.DialContext}
	t.Cleanup(func() { pool.Close() })
	proxy := &waypoint.Proxy{Pool: pool, Source: source(t, m, waypointID), Logf: t.Logf}
	w := func() *model.Waypoint {
		return ratingsGRPC(model.Endpoint{Address: onNode, Identity: reviewsID.String()})
	}
	return proxy, pool, w, serveWaypoint(t, m, proxy, w())
}

// ratingsVIP is the gRPC service's original destination.
const ratingsVIP = "10.96.0.40:9090"

// ratingsGRPC is a waypoint serving ratings' grpc port from ep.
func ratingsGRPC(ep model.Endpoint) *model.Waypoint {
	return &model.Waypoint{
		Name: "waypoint", Namespace: "default",
		Services: []model.Service{{Name: "ratings", Namespace: "default", Addresses: []string{"10.96.0.40"},
			Ports: []model.ServicePort{{Name: "grpc", Port: 9090, Protocol: model.ProtocolGRPC, Cluster: "ratings"}}}},
		Clusters: []model.Cluster{{Name: "ratings", Endpoints: []model.Endpoint{ep}}},
	}
}

// startEchoGRPC serves echoService on loopback and returns its address.
func startEchoGRPC(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	testpb.RegisterTestServiceServer(gs, echoService{})
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(gs.Stop)
	return ln.Addr().String()
}

// upstreamCuts are the cuts of the waypoint's own tunnels, which any call
// may meet.
type upstreamCuts struct {
	d    *chaos.Dialer
	seen func(local string) bool
}

// heldConns counts, by the local address of the TCP connection under
// them, the connections a gRPC client holds: gRPC closes its connection
// as its transport ends, and puts no new call on it from then on. A cut
// of a client's connection waits for that (seen), not for a fixed grace:
// a client slow to notice (-race, a loaded machine) could otherwise start
// a call on the dead transport after the grace, with no cut to blame.
type heldConns struct {
	mu   sync.Mutex
	held map[string]int
}

// hold counts c (dial's result, passed with its error) until it closes.
func (h *heldConns) hold(c net.Conn, err error) (net.Conn, error) {
	if err != nil {
		return nil, err
	}
	local := c.LocalAddr().String()
	h.mu.Lock()
	if h.held == nil {
		h.held = make(map[string]int)
	}
	h.held[local]++
	h.mu.Unlock()
	return &heldConn{Conn: c, release: sync.OnceFunc(func() {
		h.mu.Lock()
		h.held[local]--
		h.mu.Unlock()
	})}, nil
}

// seen is chaos.Dialer.Cut's seen: no connection gRPC holds rides on the
// TCP connection at local.
func (h *heldConns) seen(local string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.held[local] == 0
}

// heldConn is a connection held by a gRPC client, released as it closes.
type heldConn struct {
	net.Conn
	release func()
}

func (c *heldConn) Close() error {
	c.release()
	return c.Conn.Close()
}

// runGRPCChaos runs the chaos of TestChaosGRPC against proxy, whose
// configuration w swaps: four client connections, each dialed through
// its own chaos.Dialer (dial makes the option, holding what it dials in
// held), so that a cut excuses only the calls on its connection; with
// up, the waypoint's upstream connections are cut too, which excuses any
// call. closeAll, if set, closes what holds connections open (pools)
// before the goroutines are counted.
func runGRPCChaos(t *testing.T, proxy *waypoint.Proxy, w func() *model.Waypoint, up *upstreamCuts, dial func(down *chaos.Dialer, held *heldConns) grpc.DialOption, closeAll func()) {
	before := chaos.Goroutines()
	var (
		conns []*grpc.ClientConn
		downs []*chaos.Dialer
		helds []*heldConns
	)
	for range 4 {
		down, held := &chaos.Dialer{}, &heldConns{}
		downs, helds = append(downs, down), append(helds, held)
		conn, err := grpc.NewClient("passthrough:///ratings", grpc.WithTransportCredentials(insecure.NewCredentials()), dial(down, held))
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, conn)
	}

	ctx, cancel := chaos.Run()
	defer cancel()
	var (
		wg                    sync.WaitGroup
		complete, canceled    atomic.Int64
		statuses, cutFailures atomic.Int64
	)
	upCuts := func() int64 {
		if up == nil {
			return 0
		}
		return up.d.Cuts()
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		r := rand.New(rand.NewPCG(7, 8))
		turn := 0
		chaos.Paced(ctx, r, complete.Load, func() {
			turn++
			if up != nil && turn%2 == 1 { // every other cut, the first included
				up.d.Cut(r, up.seen)
				return
			}
			k := r.IntN(len(downs))
			downs[k].Cut(r, helds[k].seen)
		})
	}()
	go func() {
		defer wg.Done()
		swapConfigUntil(ctx, t, proxy, w)
	}()
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(i), 13))
			client, down := testpb.NewTestServiceClient(conns[i%len(conns)]), downs[i%len(conns)]
			for ctx.Err() == nil {
				upMark, downMark := upCuts(), down.Cuts()
				outcome, err := chaosCall(client, r)
				switch {
				case errors.Is(err, context.DeadlineExceeded) || status.Code(errors.Unwrap(err)) == codes.DeadlineExceeded:
					t.Errorf("a call outlived its deadline: %v", err)
				case err == nil:
					map[string]*atomic.Int64{"complete": &complete, "canceled": &canceled, "status": &statuses}[outcome].Add(1)
				case down.CutSince(downMark) || (up != nil && up.d.CutSince(upMark)):
					cutFailures.Add(1)
				default:
					t.Errorf("no connection cut meanwhile: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	cuts := upCuts()
	for _, d := range downs {
		cuts += d.Cuts()
	}
	t.Logf("calls: %d complete, %d canceled as asked, %d with the status asked, %d failed with a cut (%d cut, %d of them upstream)",
		complete.Load(), canceled.Load(), statuses.Load(), cutFailures.Load(), cuts/2, upCuts()/2)
	if complete.Load() == 0 || canceled.Load() == 0 || statuses.Load() == 0 {
		t.Error("the chaos missed a case")
	}
	if up != nil && upCuts() == 0 {
		t.Error("the chaos cut none of the waypoint's upstream connections")
	}
	for _, c := range conns {
		_ = c.Close()
	}
	if err := proxy.Close(); err != nil {
		t.Errorf("proxy.Close: %v", err)
	}
	if closeAll != nil {
		closeAll()
	}
	chaos.Settled(t, before, 8)
}

// chaosCall makes one call, unary or full-duplex, and checks its answer;
// outcome says how it ended as it should: "complete", "canceled" (by the
// client, as it chose) or "status" (the error status it asked for).
func chaosCall(client testpb.TestServiceClient, r *rand.Rand) (outcome string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	payload := &testpb.Payload{Body: chaosBody(r.IntN(64<<10), byte(r.IntN(256)))}
	if r.IntN(2) == 0 {
		req := &testpb.SimpleRequest{Payload: payload}
		if r.IntN(5) == 0 {
			req.ResponseStatus = &testpb.EchoStatus{Code: int32(codes.ResourceExhausted), Message: "as asked"}
		}
		resp, err := client.UnaryCall(ctx, req)
		switch {
		case req.ResponseStatus != nil:
			if s := status.Convert(err); s.Code() == codes.ResourceExhausted && s.Message() == "as asked" {
				return "status", nil
			}
			return "", fmt.Errorf("unary call asking for ResourceExhausted: %w", err)
		case err != nil:
			return "", fmt.Errorf("unary call: %w", err)
		case !bytes.Equal(resp.GetPayload().GetBody(), payload.Body):
			return "", fmt.Errorf("unary call: %d bytes back for %d", len(resp.GetPayload().GetBody()), len(payload.Body))
		}
		return "complete", nil
	}
	stream, err := client.FullDuplexCall(ctx)
	if err != nil {
		return "", fmt.Errorf("full-duplex call: %w", err)
	}
	n, cancelAt := 1+r.IntN(20), -1
	if r.IntN(5) == 0 {
		cancelAt = r.IntN(n)
	}
	for i := range n {
		if i == cancelAt {
			cancel()
			if _, err := stream.Recv(); status.Code(err) != codes.Canceled {
				return "", fmt.Errorf("full-duplex call canceled: Recv: %w, want Canceled", err)
			}
			return "canceled", nil
		}
		if err := stream.Send(&testpb.StreamingOutputCallRequest{Payload: payload}); err != nil {
			return "", fmt.Errorf("full-duplex call: Send %d: %w", i, err)
		}
		resp, err := stream.Recv()
		if err != nil {
			return "", fmt.Errorf("full-duplex call: Recv %d: %w", i, err)
		}
		if !bytes.Equal(resp.GetPayload().GetBody(), payload.Body) {
			return "", fmt.Errorf("full-duplex call: message %d: %d bytes back for %d", i, len(resp.GetPayload().GetBody()), len(payload.Body))
		}
	}
	if err := stream.CloseSend(); err != nil {
		return "", fmt.Errorf("full-duplex call: CloseSend: %w", err)
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("full-duplex call: after CloseSend: %w, want io.EOF", err)
	}
	return "complete", nil
}

// TestGRPCStreamUpstreamCutOverHBONE: a full-duplex gRPC stream through the
// waypoint with HBONE on both sides; the waypoint's tunnel connection to
// the backend's node is cut mid-stream, while the client waits for an
// answer without sending: its Recv fails at once instead of waiting for
// its deadline (see closeThrough: the waypoint's request body sender was
// left waiting for the client's next message, and the answer with it).
func TestGRPCStreamUpstreamCutOverHBONE(t *testing.T) {
	m := newManager(t)
	up := &chaos.Dialer{}
	proxy, pool, _, wpAddr := grpcOverHBONE(t, m, up)
	t.Cleanup(func() { proxy.Close() })
	clients := &hbone.Pool{Bundle: m.Bundle()}
	t.Cleanup(func() { clients.Close() })
	src := source(t, m, sleepID)
	conn, err := grpc.NewClient("passthrough:///ratings", grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return clients.Dial(ctx, hbone.Request{Source: src, Addr: wpAddr, Authority: ratingsVIP, Expected: []spiffeid.ID{waypointID}})
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := testpb.NewTestServiceClient(conn).FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	msg := &testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: []byte("hello")}}
	if err := stream.Send(msg); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	up.Cut(rand.New(rand.NewPCG(1, 1)), seenBy(pool))
	start := time.Now()
	_, err = stream.Recv()
	if err == nil {
		t.Fatal("Recv after the upstream cut returned a message")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Recv after the upstream cut took %v (%v), want an error at once", d, err)
	}
	t.Logf("Recv after the cut: %v", err)
}
