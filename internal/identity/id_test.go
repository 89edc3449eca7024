package identity_test

import (
	"strings"
	"testing"

	"github.com/meshway/meshway/internal/identity"
)

func TestParseID(t *testing.T) {
	for _, tc := range []struct {
		in, wantNS, wantSA, wantErr string
	}{
		{in: "spiffe://cluster.local/ns/default/sa/reviews", wantNS: "default", wantSA: "reviews"},
		{in: "spiffe://td.example/ns/istio-system/sa/waypoint", wantNS: "istio-system", wantSA: "waypoint"},
		{in: "spiffe://cluster.local/ns/default", wantErr: "not a workload identity"},
		{in: "spiffe://cluster.local/ns/default/sa/reviews/extra", wantErr: "not a workload identity"},
		{in: "spiffe://cluster.local/namespace/default/sa/x", wantErr: "not a workload identity"},
		{in: "spiffe://Cluster.local/ns/default/sa/x", wantErr: "trust domain characters"},
		{in: "https://cluster.local/ns/default/sa/x", wantErr: "scheme is missing or invalid"},
		{in: "spiffe://cluster.local/ns//sa/x", wantErr: "empty segment"},
		{in: "", wantErr: "cannot be empty"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			id, err := identity.ParseID(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseID(%q) = %v, %v; want error containing %q", tc.in, id, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ns, sa, err := identity.SplitID(id)
			if err != nil || ns != tc.wantNS || sa != tc.wantSA || id.String() != tc.in {
				t.Errorf("got %s ns=%q sa=%q err=%v", id, ns, sa, err)
			}
		})
	}
}

func TestWorkloadID(t *testing.T) {
	id, err := identity.WorkloadID("cluster.local", "default", "reviews")
	if err != nil || id.String() != "spiffe://cluster.local/ns/default/sa/reviews" {
		t.Errorf("WorkloadID = %v, %v", id, err)
	}
	for _, bad := range [][3]string{{"Bad Domain", "ns", "sa"}, {"td", "", "sa"}, {"td", "ns", ""}, {"td", "a/b", "sa"}} {
		if _, err := identity.WorkloadID(bad[0], bad[1], bad[2]); err == nil {
			t.Errorf("WorkloadID(%q) accepted", bad)
		}
	}
}
