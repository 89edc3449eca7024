package waypoint

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"time"

	"github.com/meshway/meshway/internal/model"
)

// maxReplayBody is the largest request body kept for retries; a request
// with a larger (or unknown-length) body is tried once.
const maxReplayBody = 64 << 10

// defaultBackoff is Envoy's base retry interval.
const defaultBackoff = 25 * time.Millisecond

// tries is the transport that makes the tries of one request: each goes
// to an endpoint of the chosen cluster (a retry picks again) under the
// per-try timeout, and a failed one is retried as the route's retry policy
// says. The ReverseProxy then streams the last try's response.
type tries struct{ base http.RoundTripper }

func (t tries) RoundTrip(req *http.Request) (*http.Response, error) {
	x, _ := req.Context().Value(exchangeKey{}).(*exchange)
	if x == nil {
		return nil, errors.New("internal error: no exchange")
	}
	if x.inBody != nil && req.Body != nil && req.Body != http.NoBody {
		req.Body = closeThrough{ReadCloser: req.Body, in: x.inBody} // the ReverseProxy's copy: ours to change
	}
	return x.try(req, func(out *http.Request, _ *host) (*http.Response, error) { return t.base.RoundTrip(out) })
}

// closeThrough is an outbound request body whose Close also closes the
// inbound HTTP/2 request body it reads (or the fast path's asyncBody, which
// breaks its read likewise). ReverseProxy hands the transport
// the inbound body behind a wrapper whose Close does nothing, and
// net/http's HTTP/2 transport, when the upstream connection or stream
// fails, stops the goroutine sending the body by closing it — which then
// went on waiting in a read of the client's next message, and the response
// body is ended only once that goroutine returns: a full-duplex gRPC stream
// whose upstream connection failed waited for its deadline
// (TestGRPCStreamUpstreamCutOverHBONE). Closing an HTTP/2 server's
// request body breaks a read under way at once, and is what the client's
// stream has to expect when the upstream is gone or done.
type closeThrough struct {
	io.ReadCloser           // ReverseProxy's wrapper of the inbound body
	in            io.Closer // the inbound body
}

func (b closeThrough) Close() error {
	_ = b.ReadCloser.Close()
	return b.in.Close()
}

// try makes the tries of req: send sends one to the endpoint h (out's
// context names it too, for net/http's dialer).
func (x *exchange) try(req *http.Request, send func(out *http.Request, h *host) (*http.Response, error)) (*http.Response, error) {
	attempts := 0
	if x.retry != nil {
		attempts = x.retry.Attempts
	}
	var body []byte
	if attempts > 0 && req.Body != nil && req.Body != http.NoBody {
		if req.ContentLength < 0 || req.ContentLength > maxReplayBody {
			attempts = 0 // cannot replay it
		} else {
			b, err := io.ReadAll(io.LimitReader(req.Body, maxReplayBody+1))
			_ = req.Body.Close()
			if err != nil {
				return nil, err
			}
			body = b
		}
	}
	var tried []*host
	holding := false // a retry slot of the cluster (maxRetries), held during the retry
	defer func() {
		if holding {
			x.cl.retries.Add(-1)
		}
	}()
	for try := 0; ; try++ {
		h := x.host
		if try > 0 {
			if h = x.cl.pick(req, x.src, tried); h == nil {
				return nil, errNoEndpoint
			}
		}
		tried = append(tried, h)
		// The first try goes as the proxy made the request: its context
		// already names x.host for the dialer. Later tries (and per-try
		// timeouts) need a context of their own; the request is the
		// ReverseProxy's copy, so a shallow copy of it is ours to change.
		ctx := req.Context()
		if try > 0 {
			xt := *x // the try's own endpoint, the request's response filters
			xt.host = h
			ctx = context.WithValue(ctx, exchangeKey{}, &xt)
		}
		var cancel context.CancelFunc
		if x.perTry > 0 {
			ctx, cancel = context.WithTimeout(ctx, x.perTry)
		}
		out := req
		if ctx != req.Context() || body != nil {
			out = req.WithContext(ctx)
		}
		out.URL.Host = h.ep.Address
		if body != nil {
			out.Body = io.NopCloser(bytes.NewReader(body))
		}
		h.active.Add(1)
		resp, err := send(out, h)
		h.active.Add(-1)
		status := 0
		if err == nil {
			status = resp.StatusCode
		}
		x.cl.report(h, status)
		if holding {
			x.cl.retries.Add(-1)
			holding = false
		}
		if try < attempts && req.Context().Err() == nil && retriable(x.retry, resp, err, ctx) && x.cl.admitRetry() {
			holding = true
			if resp != nil {
				_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
				_ = resp.Body.Close()
			}
			if cancel != nil {
				cancel()
			}
			if !sleep(req.Context(), backoff(x.retry, try)) {
				return nil, req.Context().Err()
			}
			continue
		}
		if err != nil {
			if cancel != nil {
				cancel()
			}
			if ctx.Err() != nil && req.Context().Err() == nil {
				err = context.DeadlineExceeded // the per-try timeout: 504
			}
			return nil, err
		}
		if cancel == nil {
			return resp, nil
		}
		if rw, ok := resp.Body.(io.ReadWriteCloser); ok && resp.StatusCode == http.StatusSwitchingProtocols {
			// An upgraded connection: the proxy needs to write to it too.
			resp.Body = &cancelOnCloseRW{ReadWriteCloser: rw, cancel: cancel}
			return resp, nil
		}
		resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
		return resp, nil
	}
}

// retriable says whether a try's outcome is retried under r.
func retriable(r *model.Retry, resp *http.Response, err error, tryCtx context.Context) bool {
	on := r.On
	if len(on) == 0 {
		on = []string{"connect-failure", "refused-stream", "retriable-status-codes"}
	}
	has := func(c string) bool { return slices.Contains(on, c) }
	if err != nil {
		timedOut := tryCtx.Err() != nil
		switch {
		case timedOut:
			return has("5xx") || has("gateway-error") || has("reset")
		case isDialError(err):
			return has("connect-failure") || has("5xx") || has("gateway-error") || has("reset")
		default: // reset or closed before a response
			return has("reset") || has("5xx") || has("refused-stream")
		}
	}
	if gs := field(resp.Header, "Grpc-Status"); gs != "" {
		// A trailers-only gRPC answer: its status is in the headers, so
		// the try can be retried, as Envoy's retry_grpc_on does (a
		// status in trailers comes after the body has gone out).
		for _, c := range on {
			if model.GRPCRetryOn[c] == gs {
				return true
			}
		}
	}
	code := resp.StatusCode
	switch {
	case has("5xx") && code >= 500:
		return true
	case has("gateway-error") && (code == http.StatusBadGateway || code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout):
		return true
	case has("retriable-4xx") && code == http.StatusConflict:
		return true
	}
	return has("retriable-status-codes") && slices.Contains(r.Codes, code)
}

// backoff is Envoy's: full jitter over base × (2^try), at most 10 × base.
func backoff(r *model.Retry, try int) time.Duration {
	base := time.Duration(r.Backoff)
	if base <= 0 {
		base = defaultBackoff
	}
	limit := min(base<<min(try, 16), 10*base)
	return time.Duration(rand.Int64N(int64(limit) + 1))
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// cancelOnClose releases a try's timeout once its response is read.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// cancelOnCloseRW is cancelOnClose for an upgraded (101) connection.
type cancelOnCloseRW struct {
	io.ReadWriteCloser
	cancel context.CancelFunc
}

func (c *cancelOnCloseRW) Close() error {
	err := c.ReadWriteCloser.Close()
	c.cancel()
	return err
}
