package hbone

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseAuthority(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Authority
		wantErr string
	}{
		{in: "10.0.0.1:8080", want: Authority{Addr: netip.MustParseAddr("10.0.0.1"), Port: 8080}},
		{in: "[fd00::1]:80", want: Authority{Addr: netip.MustParseAddr("fd00::1"), Port: 80}},
		{in: "[fe80::1%eth0]:80", want: Authority{Addr: netip.MustParseAddr("fe80::1%eth0"), Port: 80}},
		{in: "Reviews.Default.svc.cluster.local.:9080", want: Authority{Host: "reviews.default.svc.cluster.local", Port: 9080}},
		{in: "", wantErr: "empty :authority"},
		{in: "10.0.0.1", wantErr: "has no port"},
		{in: "10.0.0.1:", wantErr: "empty port"},
		{in: ":80", wantErr: "no host before the port"},
		{in: "10.0.0.1:http", wantErr: `port "http" is not a number`},
		{in: "10.0.0.1:65536", wantErr: `port "65536" is not a number 1-65535`},
		{in: "fd00::1:80", wantErr: "must be in brackets"},
		{in: "[fd00::1:80", wantErr: "missing ']'"},
		{in: "[10.0.0.1]:80", wantErr: "is not an IPv6 address"},
		{in: "300.1.1.1:80", wantErr: "not a valid IPv4 address"},
		{in: "-bad.example:80", wantErr: "starts or ends with '-'"},
		{in: "a..b:80", wantErr: "empty label"},
		{in: "a b:80", wantErr: "invalid character ' '"},
		{in: strings.Repeat("a", 64) + ".example:80", wantErr: "longer than 63 bytes"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseAuthority(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseAuthority(%q) = %v, %v; want error containing %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzParseAuthority(f *testing.F) {
	for _, s := range []string{"10.0.0.1:80", "[::1]:15008", "svc.ns.svc.cluster.local:9080", "a:0", "[fe80::1%lo]:1", "x:65535", ":", "[]:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAuthority(s)
		if err != nil {
			return
		}
		if a.Port == 0 || a.IsIP() == (a.Host != "") {
			t.Fatalf("ParseAuthority(%q) = %+v: port 0 or not exactly one of IP and host", s, a)
		}
		// The canonical form parses back to the same authority.
		b, err := ParseAuthority(a.String())
		if err != nil || b != a {
			t.Fatalf("round trip of %q via %q: %+v, %v", s, a.String(), b, err)
		}
	})
}

func TestParseBaggage(t *testing.T) {
	got, err := ParseBaggage(" k8s.namespace.name=default , service.name = product%20page;prop;p2=v , ,cloud.region=us-east1")
	if err != nil {
		t.Fatal(err)
	}
	want := Baggage{
		{Key: "k8s.namespace.name", Value: "default"},
		{Key: "service.name", Value: "product page", Properties: []string{"prop", "p2=v"}},
		{Key: "cloud.region", Value: "us-east1"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if s := FormatBaggage(got); s != "k8s.namespace.name=default,service.name=product%20page;prop;p2=v,cloud.region=us-east1" {
		t.Errorf("FormatBaggage = %q", s)
	}
	for _, bad := range []struct{ in, want string }{
		{"novalue", "has no '='"},
		{"k y=v", "is not a token"},
		{"k=a,b=%zz", "bad percent-encoding"},
		{`k=a"b`, "must be percent-encoded"},
		{strings.Repeat("k=v,", 181), "more than 180 members"},
		{"k=" + strings.Repeat("v", 8200), "more than 8192"},
	} {
		if _, err := ParseBaggage(bad.in); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("ParseBaggage(%.40q) error %v; want containing %q", bad.in, err, bad.want)
		}
	}
}

func FuzzParseBaggage(f *testing.F) {
	for _, s := range []string{"a=b", "k8s.cluster.name=c1,k8s.namespace.name=ns;p=1", "k=%41%42", " a = b ; c ", ",,", "k=v;p=%2C"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseBaggage(s)
		if err != nil {
			return
		}
		again, err := ParseBaggage(FormatBaggage(b))
		if err != nil {
			t.Fatalf("formatted baggage %q of %q does not parse: %v", FormatBaggage(b), s, err)
		}
		if len(b) == 0 && len(again) == 0 {
			return
		}
		if diff := cmp.Diff(b, again); diff != "" {
			t.Fatalf("round trip of %q changed it (-first +second):\n%s", s, diff)
		}
	})
}

func TestForwarded(t *testing.T) {
	f := Forwarded{For: netip.MustParseAddrPort("[fd00::7]:4321"), Host: "reviews.default.svc.cluster.local"}
	s := FormatForwarded(f)
	if s != `for="[fd00::7]:4321";host=reviews.default.svc.cluster.local` {
		t.Errorf("FormatForwarded = %q", s)
	}
	got, err := ParseForwarded(s)
	if err != nil || got != f {
		t.Errorf("ParseForwarded(%q) = %+v, %v", s, got, err)
	}
	if _, err := ParseForwarded("host=x"); err == nil {
		t.Error("forwarded without for= accepted")
	}
}
