package waypoint_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/meshway/meshway/internal/model"
)

// TestGRPC: a GRPC port carries unary calls, trailers (a gRPC error
// status) and server streaming between a real gRPC client and server,
// over h2c on both sides.
func TestGRPC(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("ratings", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(gs, hs)
	go gs.Serve(ln)
	defer gs.Stop()

	w := &model.Waypoint{
		Name: "waypoint", Namespace: "default",
		Services: []model.Service{{Name: "ratings", Namespace: "default", Addresses: []string{"10.96.0.40"},
			Ports: []model.ServicePort{{Name: "grpc", Port: 9090, Protocol: model.ProtocolGRPC, Cluster: "ratings"}}}},
		Clusters: []model.Cluster{{Name: "ratings", Endpoints: []model.Endpoint{{Address: ln.Addr().String()}}}},
	}
	_, proxy := startProxy(t, w, "10.96.0.40:9090")
	conn, err := grpc.NewClient(proxy, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: "ratings"})
	if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("unary call through the waypoint: %v, %v", resp, err)
	}
	_, err = client.Check(ctx, &healthpb.HealthCheckRequest{Service: "nope"})
	if status.Code(err) != codes.NotFound {
		t.Errorf("unknown service: %v; want the server's NotFound status (carried in trailers)", err)
	}
	stream, err := client.Watch(ctx, &healthpb.HealthCheckRequest{Service: "ratings"})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil || first.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("stream, first message: %v, %v", first, err)
	}
	hs.SetServingStatus("ratings", healthpb.HealthCheckResponse_NOT_SERVING)
	second, err := stream.Recv()
	if err != nil || second.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("stream, pushed update: %v, %v", second, err)
	}
}

// TestUpgrade: an HTTP/1.1 Upgrade (WebSocket's handshake) switches the
// connection to the backend's protocol, and bytes then flow both ways.
func TestUpgrade(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "want an upgrade", http.StatusBadRequest)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		io.Copy(conn, brw) // echo
	}))
	defer srv.Close()
	cl := model.Cluster{Name: "reviews", Endpoints: []model.Endpoint{{Address: strings.TrimPrefix(srv.URL, "http://")}}}
	p, proxy := startProxy(t, reviewsConfig(nil, cl), reviewsVIP)
	c, err := net.Dial("tcp", proxy)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET /chat HTTP/1.1\r\nHost: reviews:9080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v, %v; want 101", resp, err)
	}
	resp.Body.Close() // a 101 has no body; the connection goes on
	io.WriteString(c, "hello over the upgraded connection")
	got := make([]byte, len("hello over the upgraded connection"))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != "hello over the upgraded connection" {
		t.Errorf("after the upgrade: %q, %v", got, err)
	}
	// A drain waits for the upgraded connection, which net/http no longer
	// tracks once hijacked, until it ends.
	drainWaitsFor(t, p, c)
}
