package cli

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meshway/meshway/internal/push"
	pushclient "github.com/meshway/meshway/internal/push/client"
	"github.com/meshway/meshway/internal/push/wire"
)

func TestProxyStatusTable(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	proxies := []push.ProxyStatus{
		{Proxy: pushclient.NodeInfo{Kind: "waypoint", Namespace: "default", Name: "waypoint", Instance: "waypoint-7d9f-abcde"}, Connected: now.Add(-5 * time.Minute),
			Resources: []push.ResourceStatus{{Name: "default/waypoint", Acked: "2d270aa73f65aa", Sent: "2d270aa73f65aa", Current: "2d270aa73f65aa", State: push.Synced}}},
		{Proxy: pushclient.NodeInfo{Kind: "waypoint", Namespace: "team", Name: "wp", Instance: "wp-1"}, Connected: now.Add(-90 * time.Second),
			Resources: []push.ResourceStatus{{Name: "team/wp", Acked: "aaaaaaaaaaaaaa", Sent: "bbbbbbbbbbbbbb", Nacked: "bbbbbbbbbbbbbb", Current: "bbbbbbbbbbbbbb", State: push.Nacked, Error: "clusters[0]: bad"}}},
		{Proxy: pushclient.NodeInfo{Kind: "waypoint", Namespace: "x", Name: "new", Instance: "new-1"}, Connected: now.Add(-3 * time.Second),
			Resources: []push.ResourceStatus{{Name: "x/new", State: push.NotSent}}},
	}
	var out bytes.Buffer
	if err := printProxyStatus(&out, proxies, now); err != nil {
		t.Fatal(err)
	}
	want := `NAME                          KIND       CONFIG             STATUS     VERSION        CONNECTED
waypoint-7d9f-abcde.default   waypoint   default/waypoint   SYNCED     2d270aa73f65   5m
wp-1.team                     waypoint   team/wp            NACKED     aaaaaaaaaaaa   90s
new-1.x                       waypoint   x/new              NOT SENT   <none>         3s
wp-1.team rejected team/wp version bbbbbbbbbbbb: clusters[0]: bad
`
	if out.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestProxyStatusErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	err = runProxyStatus(context.Background(), &bytes.Buffer{}, addr, "", time.Now())
	if err == nil || !strings.Contains(err.Error(), "cannot reach meshd at "+addr) || !strings.Contains(err.Error(), "--meshd-address") {
		t.Errorf("unreachable meshd: %v", err)
	}

	ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("<html>")) })}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	err = runProxyStatus(context.Background(), &bytes.Buffer{}, ln.Addr().String(), "", time.Now())
	if err == nil || !strings.Contains(err.Error(), "not a proxy list") {
		t.Errorf("not meshd: %v", err)
	}
	if err := runProxyStatus(context.Background(), &bytes.Buffer{}, ln.Addr().String(), "yaml", time.Now()); err == nil || !strings.Contains(err.Error(), `-o "yaml"`) {
		t.Errorf("-o yaml: %v", err)
	}
}

// TestProxyStatusZtunnelTable: ztunnels follow the waypoints in a table of
// their own, a row per ztunnel and a column per resource type.
func TestProxyStatusZtunnelTable(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	synced := func(typ string) push.TypeStatus {
		return push.TypeStatus{Type: typ, Current: "7", Sent: "7", Acked: "7", State: push.Synced}
	}
	proxies := []push.ProxyStatus{
		{Proxy: pushclient.NodeInfo{Kind: "waypoint", Namespace: "default", Name: "waypoint", Instance: "waypoint-7d9f-abcde"}, Connected: now.Add(-5 * time.Minute),
			Resources: []push.ResourceStatus{{Name: "default/waypoint", Acked: "2d270aa73f65aa", Sent: "2d270aa73f65aa", Current: "2d270aa73f65aa", State: push.Synced}}},
		{Proxy: pushclient.NodeInfo{Kind: "ztunnel", Namespace: "istio-system", Name: "ztunnel", Instance: "ztunnel-x7k2p", Node: "node-1"}, Connected: now.Add(-time.Hour),
			Types: []push.TypeStatus{synced(wire.ZtunnelPolicyType), synced(wire.ZtunnelServiceType), synced(wire.ZtunnelWaypointType), synced(wire.ZtunnelWorkloadType)}},
		{Proxy: pushclient.NodeInfo{Kind: "ztunnel", Instance: "host-a-4242", Node: "host-a"}, Connected: now.Add(-2 * time.Minute),
			Types: []push.TypeStatus{
				{Type: wire.ZtunnelPolicyType, Current: "3", Sent: "3", Acked: "2", Nacked: "3", Rejected: 1, Error: "ns/deny: bad", State: push.Nacked},
				{Type: wire.ZtunnelWorkloadType, Current: "9", Sent: "8", Acked: "8", State: push.Stale},
			}},
	}
	var out bytes.Buffer
	if err := printProxyStatus(&out, proxies, now); err != nil {
		t.Fatal(err)
	}
	want := `NAME                          KIND       CONFIG             STATUS   VERSION        CONNECTED
waypoint-7d9f-abcde.default   waypoint   default/waypoint   SYNCED   2d270aa73f65   5m

ZTUNNEL                      NODE     WORKLOADS   SERVICES   WAYPOINTS   POLICIES   CONNECTED
ztunnel-x7k2p.istio-system   node-1   SYNCED      SYNCED     SYNCED      SYNCED     60m
host-a-4242                  host-a   STALE       -          -           NACKED     2m
host-a-4242 rejected AuthorizationPolicy version 3: ns/deny: bad
`
	if out.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", out.String(), want)
	}
}
