package client

import (
	"errors"
	"fmt"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/meshway/meshway/internal/model"
	"github.com/meshway/meshway/internal/push/wire"
)

// ZtunnelSubscriptions subscribes h to every resource of the four ztunnel
// types (wire.ZtunnelTypes), as a ztunnel does.
func ZtunnelSubscriptions(h DeltaHandler) []Subscription {
	subs := make([]Subscription, 0, len(wire.ZtunnelTypes))
	for _, t := range wire.ZtunnelTypes {
		subs = append(subs, Subscription{TypeURL: t, Names: []string{Wildcard}, Delta: h})
	}
	return subs
}

// ZtunnelConfig is a ztunnel's DeltaHandler: it keeps the resources of the
// four types (wire.ZtunnelState) and, after each response, assembles and
// validates the node's configuration from them.
//
//   - A response whose resources do not convert, or after which the
//     configuration does not validate, is rejected (NACKed) and undone:
//     the ztunnel keeps the configuration it had.
//   - A response after which a piece refers to one of another type that
//     has not arrived yet (the types arrive independently) is accepted,
//     but the configuration in use stays the last complete one until the
//     missing pieces come (Incomplete says what they are).
//
// While the control plane is away the state and the configuration stay as
// they are; the client's reconnection names the versions held, so only
// what changed meanwhile is sent.
type ZtunnelConfig struct {
	node     string
	onChange func(*model.Ztunnel)
	logf     func(format string, args ...any)

	mu         sync.Mutex
	state      *wire.ZtunnelState
	current    *model.Ztunnel
	incomplete error
}

// NewZtunnelConfig returns the handler of the ztunnel of node. onChange,
// if set, receives each new configuration (validated; it must not modify
// it), on the client's goroutine; logf, if set, says when the
// configuration is incomplete.
func NewZtunnelConfig(node string, onChange func(*model.Ztunnel), logf func(string, ...any)) *ZtunnelConfig {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	return &ZtunnelConfig{node: node, onChange: onChange, logf: logf, state: wire.NewZtunnelState()}
}

// Apply implements DeltaHandler.
func (z *ZtunnelConfig) Apply(d Delta) error {
	z.mu.Lock()
	defer z.mu.Unlock()
	updated := make(map[string]proto.Message, len(d.Added)+len(d.Updated))
	for _, rs := range [][]Resource{d.Added, d.Updated} {
		for _, r := range rs {
			updated[r.Name] = r.Message
		}
	}
	undo, err := z.state.Apply(d.TypeURL, updated, d.Removed)
	if err != nil {
		return fmt.Errorf("%s: %w", shortType(d.TypeURL), err)
	}
	cfg, err := z.state.Assemble(z.node)
	var inc *wire.IncompleteError
	switch {
	case errors.As(err, &inc):
		if z.incomplete == nil {
			z.logf("xds: ztunnel configuration incomplete after %s, keeping the current one until the rest arrives: %v", shortType(d.TypeURL), err)
		}
		z.incomplete = err
		return nil
	case err != nil:
		undo()
		return fmt.Errorf("after %s: %w", shortType(d.TypeURL), err)
	}
	z.current, z.incomplete = cfg, nil
	if z.onChange != nil {
		z.onChange(cfg)
	}
	return nil
}

// Current is the configuration in use: the last complete and valid one,
// nil before the first.
func (z *ZtunnelConfig) Current() *model.Ztunnel {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.current
}

// Incomplete is why the resources held do not make a complete
// configuration (a *wire.IncompleteError), nil when they do.
func (z *ZtunnelConfig) Incomplete() error {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.incomplete
}

// Held counts the resources of a type the state holds.
func (z *ZtunnelConfig) Held(typeURL string) int {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.state.Len(typeURL)
}
