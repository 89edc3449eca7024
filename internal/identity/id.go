package identity

import (
	"fmt"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// ParseID parses and validates a workload SPIFFE ID,
// spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>. Other SPIFFE
// IDs, valid as they may be for SPIFFE, are rejected with an error saying
// which part is wrong.
func ParseID(s string) (spiffeid.ID, error) {
	id, err := spiffeid.FromString(s)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("SPIFFE ID %q: %w", s, err)
	}
	if _, _, err := SplitID(id); err != nil {
		return spiffeid.ID{}, err
	}
	return id, nil
}

// WorkloadID returns spiffe://<td>/ns/<ns>/sa/<sa>. The trust domain must be
// a valid SPIFFE trust domain name (lowercase letters, digits, '.', '-',
// '_'); namespace and service account must be non-empty path segments.
func WorkloadID(td, ns, sa string) (spiffeid.ID, error) {
	trust, err := spiffeid.TrustDomainFromString(td)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("trust domain %q: %w", td, err)
	}
	if ns == "" || sa == "" {
		return spiffeid.ID{}, fmt.Errorf("workload identity needs a namespace and a service account (got ns=%q sa=%q)", ns, sa)
	}
	id, err := spiffeid.FromSegments(trust, "ns", ns, "sa", sa)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("workload identity ns=%q sa=%q: %w", ns, sa, err)
	}
	return id, nil
}

// MustWorkloadID is [WorkloadID] for constants and tests; it panics on error.
func MustWorkloadID(td, ns, sa string) spiffeid.ID {
	id, err := WorkloadID(td, ns, sa)
	if err != nil {
		panic(err)
	}
	return id
}

// SplitID returns the namespace and service account of a workload ID, or an
// error if the path is not /ns/<ns>/sa/<sa>.
func SplitID(id spiffeid.ID) (namespace, serviceAccount string, err error) {
	if id.IsZero() {
		return "", "", fmt.Errorf("empty SPIFFE ID")
	}
	parts := strings.Split(strings.TrimPrefix(id.Path(), "/"), "/")
	if len(parts) != 4 || parts[0] != "ns" || parts[2] != "sa" || parts[1] == "" || parts[3] == "" {
		return "", "", fmt.Errorf("SPIFFE ID %q is not a workload identity: want spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>", id)
	}
	return parts[1], parts[3], nil
}
