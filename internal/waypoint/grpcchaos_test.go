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

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/meshway/meshway/internal/chaos"
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
// connections to the waypoint are cut and the configuration is swapped.
// Every call must end within its deadline; an answer must be the payload
// sent, or the status asked; a call may fail only by its own cancel or a
// cut; nothing may be left running.
func TestChaosGRPC(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	testpb.RegisterTestServiceServer(gs, echoService{})
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(gs.Stop)

	w := func() *model.Waypoint {
		return &model.Waypoint{
			Name: "waypoint", Namespace: "default",
			Services: []model.Service{{Name: "ratings", Namespace: "default", Addresses: []string{"10.96.0.40"},
				Ports: []model.ServicePort{{Name: "grpc", Port: 9090, Protocol: model.ProtocolGRPC, Cluster: "ratings"}}}},
			Clusters: []model.Cluster{{Name: "ratings", Endpoints: []model.Endpoint{{Address: ln.Addr().String()}}}},
		}
	}
	proxy := &waypoint.Proxy{Logf: t.Logf}
	if err := proxy.Load(w()); err != nil {
		t.Fatal(err)
	}
	pln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = proxy.ServeListener(pln, "10.96.0.40:9090") }()
	before := chaos.Goroutines()

	// Four client connections, each with its own dialer: a cut excuses
	// only the calls on its connection.
	var (
		conns []*grpc.ClientConn
		downs []*chaos.Dialer
	)
	for range 4 {
		down := &chaos.Dialer{}
		downs = append(downs, down)
		conn, err := grpc.NewClient(pln.Addr().String(),
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
				return down.DialContext(ctx, "tcp", addr)
			}))
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
	wg.Add(2)
	go func() {
		defer wg.Done()
		r := rand.New(rand.NewPCG(7, 8))
		for ctx.Err() == nil {
			time.Sleep(time.Duration(50+r.IntN(150)) * time.Millisecond)
			downs[r.IntN(len(downs))].Cut(r, nil)
		}
	}()
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			time.Sleep(100 * time.Millisecond)
			if err := proxy.Load(w()); err != nil {
				t.Errorf("Load: %v", err)
			}
		}
	}()
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(i), 13))
			client, down := testpb.NewTestServiceClient(conns[i%len(conns)]), downs[i%len(conns)]
			for ctx.Err() == nil {
				cuts := down.Cuts()
				outcome, err := chaosCall(client, r)
				switch {
				case errors.Is(err, context.DeadlineExceeded):
					t.Errorf("a call outlived its deadline: %v", err)
				case err == nil:
					map[string]*atomic.Int64{"complete": &complete, "canceled": &canceled, "status": &statuses}[outcome].Add(1)
				case down.Cuts() != cuts:
					cutFailures.Add(1)
				default:
					t.Errorf("no connection cut meanwhile: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	cuts := int64(0)
	for _, d := range downs {
		cuts += d.Cuts()
	}
	t.Logf("calls: %d complete, %d canceled as asked, %d with the status asked, %d failed with a cut (%d cut)",
		complete.Load(), canceled.Load(), statuses.Load(), cutFailures.Load(), cuts/2)
	if complete.Load() == 0 || canceled.Load() == 0 || statuses.Load() == 0 {
		t.Error("the chaos missed a case")
	}
	for _, c := range conns {
		_ = c.Close()
	}
	if err := proxy.Close(); err != nil {
		t.Errorf("proxy.Close: %v", err)
	}
	_ = pln.Close()
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
