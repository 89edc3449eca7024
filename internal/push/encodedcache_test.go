package push

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/stream/v3"
)

// wcSet is an update of resources whose content is their version.
func wcSet(kv ...string) map[string]*wcEntry {
	out := map[string]*wcEntry{}
	for i := 0; i < len(kv); i += 2 {
		out[kv[i]] = &wcEntry{bytes: []byte(kv[i+1]), version: kv[i+1]}
	}
	return out
}

// watchOnce creates a watch as the delta server does and returns its
// response, if it answered at once, as "sent names / removed names" and
// the next returned resources.
func watchOnce(t *testing.T, c *encodedCache, sub stream.Subscription, nonce string) (sent, removed []string, next map[string]string, cancel func()) {
	t.Helper()
	out := make(chan cache.DeltaResponse, 1)
	cancel, err := c.CreateDeltaWatch(&discovery.DeltaDiscoveryRequest{TypeUrl: stringType, ResponseNonce: nonce}, sub, out)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-out:
		d, _ := r.GetDeltaDiscoveryResponse()
		for _, res := range d.GetResources() {
			sent = append(sent, res.GetName()+"@"+res.GetVersion())
		}
		return sent, d.GetRemovedResources(), r.GetNextVersionMap(), cancel
	default:
		return nil, nil, nil, cancel
	}
}

func TestEncodedCacheSendsWhatTheSubscriberLacks(t *testing.T) {
	c := newEncodedCache(stringType, time.Hour, nil)
	c.update(wcSet("a", "a1", "b", "b1", "c", "c1"), nil)

	// A new stream naming what it kept: a at its version, b at an older
	// one, and x, which is gone.
	sub := stream.NewDeltaSubscription([]string{"*"}, nil, map[string]string{"a": "a1", "b": "b0", "x": "x1"}, false)
	sent, removed, next, _ := watchOnce(t, c, sub, "")
	if !slices.Equal(sent, []string{"b@b1", "c@c1"}) || !slices.Equal(removed, []string{"x"}) {
		t.Fatalf("first response sent %v and removed %v; want b@b1 c@c1, and x removed", sent, removed)
	}
	// What the stream keeps per type: the revision, not a map as large as
	// the type.
	if len(next) != 1 || next[revKey] != "1" {
		t.Fatalf("next returned resources %v, want only the revision", next)
	}
	sub.SetReturnedResources(next)

	// Up to date: the watch waits; an update answers it with the change.
	out := make(chan cache.DeltaResponse, 1)
	if _, err := c.CreateDeltaWatch(&discovery.DeltaDiscoveryRequest{TypeUrl: stringType, ResponseNonce: "1"}, sub, out); err != nil {
		t.Fatal(err)
	}
	c.update(wcSet("b", "b2"), []string{"c"})
	r := <-out
	d, _ := r.GetDeltaDiscoveryResponse()
	if len(d.GetResources()) != 1 || d.GetResources()[0].GetName() != "b" || !slices.Equal(d.GetRemovedResources(), []string{"c"}) || d.GetSystemVersionInfo() != "2" {
		t.Fatalf("update's response %v", d)
	}
	sub.SetReturnedResources(r.GetNextVersionMap())

	// Two updates while the proxy had not answered: both, once, on its ACK.
	c.update(wcSet("d", "d1"), nil)
	c.update(wcSet("d", "d2", "a", "a2"), nil)
	sent, removed, next, _ = watchOnce(t, c, sub, "2")
	if !slices.Equal(sent, []string{"a@a2", "d@d2"}) || len(removed) != 0 || next[revKey] != "4" {
		t.Fatalf("catching up: sent %v, removed %v, next %v", sent, removed, next)
	}
}

func TestEncodedCacheEndsAStreamTooFarBehind(t *testing.T) {
	c := newEncodedCache(stringType, time.Millisecond, nil)
	c.update(wcSet("a", "a1"), nil)
	sub := stream.NewDeltaSubscription([]string{"*"}, nil, nil, false)
	_, _, next, _ := watchOnce(t, c, sub, "")
	sub.SetReturnedResources(next)
	time.Sleep(5 * time.Millisecond)
	c.update(wcSet("b", "b1"), nil)
	time.Sleep(5 * time.Millisecond)
	c.update(wcSet("c", "c1"), nil) // the log forgets revision 2
	out := make(chan cache.DeltaResponse, 1)
	_, err := c.CreateDeltaWatch(&discovery.DeltaDiscoveryRequest{TypeUrl: stringType, ResponseNonce: "1"}, sub, out)
	if !errors.Is(err, errTooFarBehind) {
		t.Fatalf("a revision the log no longer covers: %v, want errTooFarBehind", err)
	}
	if len(c.log) != 1 || c.floor != 2 {
		t.Errorf("log %v, floor %d: want only revision 3's change, floor 2", c.log, c.floor)
	}
}

// TestEncodedCacheNamedSubscription: a subscription by name is served
// as LinearCache serves it.
func TestEncodedCacheNamedSubscription(t *testing.T) {
	c := newEncodedCache(stringType, time.Hour, nil)
	c.update(wcSet("a", "a1", "b", "b1"), nil)
	sub := stream.NewDeltaSubscription([]string{"a", "z"}, nil, map[string]string{"a": "a0", "b": "b1"}, false)
	sent, removed, next, _ := watchOnce(t, c, sub, "")
	if !slices.Equal(sent, []string{"a@a1"}) || !slices.Equal(removed, []string{"b"}) || next["a"] != "a1" || len(next) != 1 {
		t.Fatalf("sent %v, removed %v, next %v; want a@a1, b removed (not subscribed), next {a: a1}", sent, removed, next)
	}
	sub.SetReturnedResources(next)
	out := make(chan cache.DeltaResponse, 1)
	cancel, err := c.CreateDeltaWatch(&discovery.DeltaDiscoveryRequest{TypeUrl: stringType, ResponseNonce: "1"}, sub, out)
	if err != nil {
		t.Fatal(err)
	}
	c.update(wcSet("b", "b2"), nil) // not subscribed: nothing
	select {
	case r := <-out:
		t.Fatalf("a change of an unsubscribed resource answered the watch: %v", r)
	default:
	}
	cancel()
	if len(c.watches) != 0 {
		t.Errorf("%d watches after cancel", len(c.watches))
	}
}

// TestBigResponsesTakeTurns: a response of more than bigResponse
// resources is built only with a free slot, which is freed when the
// response is answered; a stream holding a slot takes another without
// waiting.
func TestBigResponsesTakeTurns(t *testing.T) {
	limit := newSendLimiter(1)
	c := newEncodedCache(stringType, time.Hour, limit)
	kv := []string{}
	for i := range bigResponse + 1 {
		kv = append(kv, fmt.Sprintf("r%d", i), "v")
	}
	c.update(wcSet(kv...), nil)
	first := func(out chan cache.DeltaResponse) cache.DeltaResponse {
		if _, err := c.CreateDeltaWatch(&discovery.DeltaDiscoveryRequest{TypeUrl: stringType}, stream.NewDeltaSubscription([]string{"*"}, nil, nil, false), out); err != nil {
			t.Fatal(err)
		}
		return <-out
	}
	outA, outB := make(chan cache.DeltaResponse, 2), make(chan cache.DeltaResponse, 1)
	a, b := first(outA), first(outB)
	ra, _ := a.GetDeltaDiscoveryResponse()
	// Stream A again (another type, say): it holds the slot, so it does
	// not wait.
	ra2, _ := first(outA).GetDeltaDiscoveryResponse()
	built := make(chan *discovery.DeltaDiscoveryResponse)
	go func() { rb, _ := b.GetDeltaDiscoveryResponse(); built <- rb }()
	wait := func(what string) {
		select {
		case <-built:
			t.Fatalf("stream B's big response was built while %s", what)
		case <-time.After(50 * time.Millisecond):
		}
	}
	wait("stream A held the slot")
	for _, r := range []*discovery.DeltaDiscoveryResponse{ra, ra2} {
		s, ok := limit.claim(r)
		if !ok {
			t.Fatal("a big response holds no slot")
		}
		if r == ra {
			limit.release(s)
			wait("stream A still had a response unanswered")
		} else {
			limit.release(s)
		}
	}
	rb := <-built
	if len(rb.GetResources()) != bigResponse+1 {
		t.Fatalf("%d resources", len(rb.GetResources()))
	}
	s, _ := limit.claim(rb)
	limit.release(s)
	if len(limit.slots) != 0 || len(limit.holders) != 0 || len(limit.built) != 0 {
		t.Errorf("after every response was answered: %d slots, %d holders, %d built", len(limit.slots), len(limit.holders), len(limit.built))
	}
}

// TestFreshSubscribersShareTheFullSet: subscribers that hold nothing get,
// at one revision, the same resources (one list built, not one each);
// after an update, a new list with the change.
func TestFreshSubscribersShareTheFullSet(t *testing.T) {
	c := newEncodedCache(stringType, time.Hour, nil)
	c.update(wcSet("a", "a1", "b", "b1"), nil)
	first := func() *discovery.DeltaDiscoveryResponse {
		t.Helper()
		out := make(chan cache.DeltaResponse, 1)
		sub := stream.NewDeltaSubscription([]string{"*"}, nil, nil, false)
		if _, err := c.CreateDeltaWatch(&discovery.DeltaDiscoveryRequest{TypeUrl: stringType}, sub, out); err != nil {
			t.Fatal(err)
		}
		r := <-out
		if next := r.GetNextVersionMap(); len(next) != 1 || next[revKey] == "" {
			t.Fatalf("next returned resources %v, want only the revision", next)
		}
		d, _ := r.GetDeltaDiscoveryResponse()
		return d
	}
	names := func(d *discovery.DeltaDiscoveryResponse) []string {
		var out []string
		for _, r := range d.GetResources() {
			out = append(out, r.GetName()+"@"+r.GetVersion())
		}
		slices.Sort(out)
		return out
	}
	r1, r2 := first(), first()
	if r1 == r2 {
		t.Fatal("two streams got the same response message: the server sets a nonce on each")
	}
	if got := names(r1); !slices.Equal(got, []string{"a@a1", "b@b1"}) {
		t.Fatalf("first response carried %v, want a@a1 b@b1", got)
	}
	if &r1.Resources[0] != &r2.Resources[0] {
		t.Fatal("two fresh subscribers at one revision got a list of resources each; want one shared")
	}
	c.update(wcSet("b", "b2"), nil)
	r3 := first()
	if got := names(r3); !slices.Equal(got, []string{"a@a1", "b@b2"}) {
		t.Fatalf("after an update, the first response carried %v, want a@a1 b@b2", got)
	}
	if &r3.Resources[0] == &r1.Resources[0] {
		t.Fatal("a fresh subscriber after an update got the old revision's list")
	}
}
