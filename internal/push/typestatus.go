package push

import (
	"strconv"
	"time"
)

// TypeStatus is one type a proxy subscribes to whole (the wildcard, as a
// ztunnel does), tracked per type: versions are the type's on the control
// plane (a counter of its updates, the responses' system_version_info),
// not a resource's hash. A proxy that ACKed the current version holds
// every resource of the type as the control plane has it.
type TypeStatus struct {
	Type    string `json:"type"`
	Current string `json:"current"`
	Sent    string `json:"sent,omitempty"`
	// SentResources is how many resources the last response carried.
	SentResources int       `json:"sentResources"`
	SentAt        time.Time `json:"sentAt,omitzero"`
	Acked         string    `json:"acked,omitempty"`
	Nacked        string    `json:"nacked,omitempty"`
	Error         string    `json:"error,omitempty"` // the proxy's reason for the last NACK
	// Rejected counts the resources the proxy refused and has not accepted
	// since; -1 when a refused response was too big to count them (the
	// type stays NACKED until the proxy reconnects and resyncs).
	Rejected int    `json:"rejected,omitempty"`
	State    string `json:"state"`
}

func (ts *typeState) status(typ string, current uint64) TypeStatus {
	v := func(n uint64, ok bool) string {
		if !ok {
			return ""
		}
		return strconv.FormatUint(n, 10)
	}
	s := TypeStatus{
		Type: typ, Current: v(current, true), Sent: v(ts.sent, ts.hasSent), SentResources: ts.sentCount, SentAt: ts.sentAt,
		Acked: v(ts.acked, ts.hasAcked), Nacked: v(ts.nacked, ts.hasNacked), Error: ts.err, Rejected: len(ts.rejected),
	}
	if ts.rejectedAll {
		s.Rejected = -1
	}
	switch {
	// A NACK stands until the resources it refused are accepted: a later
	// ACK of other resources of the type does not make the proxy current.
	case ts.hasNacked && (ts.rejectedAll || len(ts.rejected) > 0 || !ts.hasAcked || ts.acked < ts.nacked):
		s.State = Nacked
	case ts.hasAcked && ts.acked >= current:
		s.State = Synced
	default:
		s.State = Stale
	}
	return s
}
