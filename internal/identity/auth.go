package identity

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
)

// Caller is an authenticated client of the CA.
type Caller struct {
	// Kind says how the caller authenticated: CallerNode or
	// CallerServiceAccount.
	Kind string
	// Name identifies the caller within its kind: the node name, or
	// "<namespace>/<service-account>".
	Name string
}

// Caller kinds.
const (
	// CallerNode authenticated with a node token ([NodeTokenAuthenticator]).
	CallerNode = "node"
	// CallerServiceAccount authenticated with a Kubernetes ServiceAccount
	// token (internal/kube's TokenReview authenticator).
	CallerServiceAccount = "serviceaccount"
)

func (c Caller) String() string { return c.Kind + "/" + c.Name }

// ServiceAccountCaller is the caller a ServiceAccount token authenticates.
func ServiceAccountCaller(namespace, serviceAccount string) Caller {
	return Caller{Kind: CallerServiceAccount, Name: namespace + "/" + serviceAccount}
}

// ServiceAccount returns the namespace and name of a CallerServiceAccount.
func (c Caller) ServiceAccount() (namespace, serviceAccount string, ok bool) {
	if c.Kind != CallerServiceAccount {
		return "", "", false
	}
	ns, sa, ok := strings.Cut(c.Name, "/")
	return ns, sa, ok && ns != "" && sa != ""
}

// Authenticator establishes who sent a request: a node token
// ([NodeTokenAuthenticator]) or a Kubernetes ServiceAccount token
// (internal/kube's TokenReview authenticator).
type Authenticator interface {
	// Authenticate returns the caller of the RPC in ctx, or an error
	// wrapping [ErrUnauthenticated].
	Authenticate(ctx context.Context) (Caller, error)
}

// Authorizer decides whether a caller may obtain a certificate for an
// identity: a node only for the workloads it hosts.
type Authorizer interface {
	// Authorize returns nil to allow, or an error wrapping
	// [ErrPermissionDenied].
	Authorize(ctx context.Context, caller Caller, id spiffeid.ID) error
}

// Errors of authentication and authorization; test with errors.Is. An
// error wrapping neither (the token could not be checked: the API server
// is away) is reported to the caller as Unavailable, so that it retries.
var (
	ErrUnauthenticated  = errors.New("unauthenticated")
	ErrPermissionDenied = errors.New("permission denied")
)

// BearerToken returns the token of the one "authorization: Bearer <token>"
// entry of the incoming gRPC metadata in ctx, or an error wrapping
// [ErrUnauthenticated].
func BearerToken(ctx context.Context) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) != 1 {
		return "", fmt.Errorf("%w: want one \"authorization: Bearer <token>\" metadata entry, got %d", ErrUnauthenticated, len(vals))
	}
	tok, ok := strings.CutPrefix(vals[0], "Bearer ")
	if !ok || tok == "" {
		return "", fmt.Errorf("%w: authorization metadata is not \"Bearer <token>\"", ErrUnauthenticated)
	}
	return tok, nil
}

// NodeTokenAuthenticator authenticates nodes by a bearer token in the gRPC
// metadata ("authorization: Bearer <token>"), matched against a tokens file
// with one "<node-name> <token>" per line ('#' starts a comment). The file is
// re-read when it changes, so tokens can be added or revoked live.
type NodeTokenAuthenticator struct {
	path string

	mu     sync.Mutex
	mod    time.Time
	size   int64
	tokens map[[sha256.Size]byte]string // sha256(token) → node
}

// NewNodeTokenAuthenticator loads the tokens file at path.
func NewNodeTokenAuthenticator(path string) (*NodeTokenAuthenticator, error) {
	a := &NodeTokenAuthenticator{path: path}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.reloadLocked(); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *NodeTokenAuthenticator) reloadLocked() error {
	st, err := os.Stat(a.path)
	if err != nil {
		return fmt.Errorf("node tokens file: %w", err)
	}
	if a.tokens != nil && st.ModTime().Equal(a.mod) && st.Size() == a.size {
		return nil
	}
	data, err := os.ReadFile(a.path)
	if err != nil {
		return fmt.Errorf("node tokens file: %w", err)
	}
	tokens := map[[sha256.Size]byte]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return fmt.Errorf("%s:%d: want \"<node-name> <token>\", got %d fields", a.path, n, len(f))
		}
		tokens[sha256.Sum256([]byte(f[1]))] = f[0]
	}
	a.tokens, a.mod, a.size = tokens, st.ModTime(), st.Size()
	return nil
}

// Authenticate implements [Authenticator].
func (a *NodeTokenAuthenticator) Authenticate(ctx context.Context) (Caller, error) {
	tok, err := BearerToken(ctx)
	if err != nil {
		return Caller{}, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.reloadLocked(); err != nil {
		return Caller{}, fmt.Errorf("%w: %w", ErrUnauthenticated, err)
	}
	node, ok := a.tokens[sha256.Sum256([]byte(tok))]
	if !ok {
		return Caller{}, fmt.Errorf("%w: unknown node token", ErrUnauthenticated)
	}
	return Caller{Kind: CallerNode, Name: node}, nil
}

// HostedIdentities is an [Authorizer] that lets a node obtain certificates
// for the identities of the workloads it hosts, as last set with Set. The
// control plane updates it as pods come and go. The zero value allows
// nothing and is ready to use.
type HostedIdentities struct {
	mu    sync.RWMutex
	nodes map[string]map[spiffeid.ID]struct{}
}

// Set replaces the identities node hosts.
func (h *HostedIdentities) Set(node string, ids ...spiffeid.ID) {
	set := make(map[spiffeid.ID]struct{}, len(ids))
	for _, id := range ids {
		set[id] = struct{}{}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.nodes == nil {
		h.nodes = map[string]map[spiffeid.ID]struct{}{}
	}
	h.nodes[node] = set
}

// Authorize implements [Authorizer].
func (h *HostedIdentities) Authorize(_ context.Context, caller Caller, id spiffeid.ID) error {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if caller.Kind == CallerNode {
		if _, ok := h.nodes[caller.Name][id]; ok {
			return nil
		}
	}
	return fmt.Errorf("%w: %s hosts no workload with identity %s", ErrPermissionDenied, caller, id)
}

// OwnServiceAccount is an [Authorizer] for ServiceAccount callers: a
// ServiceAccount token obtains the identity of that ServiceAccount,
// spiffe://<trust-domain>/ns/<namespace>/sa/<name>, and no other (Istio's
// rule for its CA). The trust domain is the CA's, checked before.
type OwnServiceAccount struct{}

// Authorize implements [Authorizer].
func (OwnServiceAccount) Authorize(_ context.Context, caller Caller, id spiffeid.ID) error {
	ns, sa, ok := caller.ServiceAccount()
	if !ok {
		return fmt.Errorf("%w: %s is not a ServiceAccount; only ServiceAccount tokens obtain certificates here", ErrPermissionDenied, caller)
	}
	idNS, idSA, err := SplitID(id)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrPermissionDenied, err)
	}
	if idNS != ns || idSA != sa {
		return fmt.Errorf("%w: the token of ServiceAccount %s/%s may obtain only its own identity (ns/%s/sa/%s), not %s", ErrPermissionDenied, ns, sa, ns, sa, id)
	}
	return nil
}

// TokenFileCredentials returns gRPC per-RPC credentials sending the token
// in the file at path as "authorization: Bearer <token>". The file is read
// on every call (certificate requests and xDS streams are rare), so a
// rotated token — Kubernetes rewrites a projected ServiceAccount token
// well before it expires — is picked up. The credentials require a secure
// transport.
func TokenFileCredentials(path string) credentials.PerRPCCredentials {
	return tokenFile(path)
}

type tokenFile string

func (p tokenFile) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	b, err := os.ReadFile(string(p))
	if err != nil {
		return nil, fmt.Errorf("reading the token to authenticate with: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return nil, fmt.Errorf("token file %s is empty", string(p))
	}
	return map[string]string{"authorization": "Bearer " + tok}, nil
}

func (tokenFile) RequireTransportSecurity() bool { return true }
