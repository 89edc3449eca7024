package deploy

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/util/validation"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

func TestPortName(t *testing.T) {
	long := strings.Repeat("a", 70)
	for _, tc := range []struct {
		listener, protocol string
		index              int
		want               string
	}{
		{"mesh", "hbone", 0, "mesh"},
		{"tcp.db", "tcp", 1, "tcp-db"},
		{"UPPER", "http", 0, "upper"},
		{"-x-", "http", 0, "x"},
		{long, "http", 0, strings.Repeat("a", 63)},
		{strings.Repeat("b", 62) + ".c", "http", 0, strings.Repeat("b", 62)},
		{"", "HBONE", 3, "hbone-3"},
		{"...", "", 2, "port-2"},
		{"", "example.com/PROXY", 1, "example-com-proxy-1"},
	} {
		got := portName(tc.listener, tc.protocol, tc.index)
		if got != tc.want {
			t.Errorf("portName(%q, %q, %d) = %q, want %q", tc.listener, tc.protocol, tc.index, got, tc.want)
		}
		if errs := validation.IsDNS1123Label(got); len(errs) > 0 {
			t.Errorf("portName(%q) = %q is not a valid Service port name: %v", tc.listener, got, errs)
		}
	}
}

func TestUniquePortName(t *testing.T) {
	used := map[string]bool{}
	long := strings.Repeat("x", 63)
	var got []string
	for _, n := range []string{"status-port", "mesh", "mesh", "mesh", long, long} {
		got = append(got, uniquePortName(n, used))
	}
	want := []string{"status-port", "mesh", "mesh-2", "mesh-3", long, strings.Repeat("x", 61) + "-2"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("uniquePortName (-want +got):\n%s", diff)
	}
	for _, n := range got {
		if len(n) > 63 {
			t.Errorf("%q is longer than 63", n)
		}
	}
}

func TestServicePorts(t *testing.T) {
	ports := servicePorts([]gwv1.Listener{
		{Name: "mesh", Port: 15008, Protocol: "HBONE"},
		{Name: "again", Port: 15008, Protocol: "HTTP"}, // same port: the first listener wins
		{Name: "status-port", Port: 8080, Protocol: "HTTP"},
		{Name: "status.port", Port: 8081, Protocol: "TCP"},
	})
	type port struct {
		Name string
		Port int32
		App  string
	}
	var got []port
	for _, p := range ports {
		got = append(got, port{p.Name, p.Port, *p.AppProtocol})
		if p.TargetPort.IntValue() != int(p.Port) {
			t.Errorf("port %s: targetPort %v, want %d", p.Name, p.TargetPort, p.Port)
		}
	}
	want := []port{
		{"status-port", 15021, "tcp"},
		{"mesh", 15008, "hbone"},
		{"status-port-2", 8080, "http"},
		{"status-port-3", 8081, "tcp"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("servicePorts (-want +got):\n%s", diff)
	}
}
