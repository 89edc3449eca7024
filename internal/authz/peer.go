package authz

import (
	"fmt"
	"strings"
)

// PeerIdentity is who sent a request, from the HBONE peer certificate.
// Both fields are empty for a plaintext peer.
type PeerIdentity struct {
	// Principal is the SPIFFE ID without its scheme, as AuthorizationPolicy
	// writes principals: "cluster.local/ns/default/sa/bookinfo-productpage".
	Principal string
	// Namespace is the identity's namespace: "default".
	Namespace string
}

// PeerFromSPIFFE turns a workload SPIFFE ID,
// spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>, into the peer
// identity policies match: the principal without "spiffe://" and the
// namespace segment.
func PeerFromSPIFFE(uri string) (PeerIdentity, error) {
	rest, ok := strings.CutPrefix(uri, "spiffe://")
	if !ok {
		return PeerIdentity{}, fmt.Errorf("peer identity %q is not a SPIFFE ID: want spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>", uri)
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 5 || parts[0] == "" || parts[1] != "ns" || parts[2] == "" || parts[3] != "sa" || parts[4] == "" {
		return PeerIdentity{}, fmt.Errorf("peer identity %q is not a workload identity: want spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>", uri)
	}
	return PeerIdentity{Principal: rest, Namespace: parts[2]}, nil
}
