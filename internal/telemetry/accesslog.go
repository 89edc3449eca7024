package telemetry

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// AccessLogEntry is one access log line: the fields of Istio's default JSON
// access log (EnvoyJSONLogFormatIstio, istio/istio
// pilot/pkg/model/telemetry_logging.go). The comments name the Envoy command
// operator each field stands for. An empty string is written as null, as
// Envoy writes an unknown value; numbers are written as JSON numbers.
type AccessLogEntry struct {
	// StartTime is when the request (or connection) started (%START_TIME%),
	// written in UTC with milliseconds: "2026-02-24T10:30:45.123Z"; null
	// when zero.
	StartTime time.Time
	// Method is the request's method (%REQ(:METHOD)%).
	Method string
	// Path is the request's path as received, with its query
	// (%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%).
	Path string
	// Protocol is the downstream protocol: "HTTP/1.1", "HTTP/2" (%PROTOCOL%).
	Protocol string
	// ResponseCode is the status sent downstream, 0 for none (%RESPONSE_CODE%).
	ResponseCode int
	// ResponseFlags are Envoy's short response flags; empty is written "-"
	// (%RESPONSE_FLAGS%).
	ResponseFlags string
	// ResponseCodeDetails says why the response code is what it is:
	// "via_upstream", "route_not_found" (%RESPONSE_CODE_DETAILS%).
	ResponseCodeDetails string
	// ConnectionTerminationDetails says why the proxy closed the connection
	// (%CONNECTION_TERMINATION_DETAILS%).
	ConnectionTerminationDetails string
	// BytesReceived and BytesSent are the body bytes received from and sent
	// to the downstream (%BYTES_RECEIVED%, %BYTES_SENT%).
	BytesReceived int64
	BytesSent     int64
	// Duration is from the first byte received to the last byte sent,
	// written in whole milliseconds (%DURATION%).
	Duration time.Duration
	// UpstreamServiceTime is how long the upstream took to answer, written as
	// Envoy's x-envoy-upstream-service-time header: a string of whole
	// milliseconds (%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%). It is null when
	// UpstreamHost is empty (no upstream answered).
	UpstreamServiceTime time.Duration
	// XForwardedFor, UserAgent, RequestID and Authority are the request's
	// X-Forwarded-For, User-Agent, X-Request-Id and :authority (Host).
	XForwardedFor string
	UserAgent     string
	RequestID     string
	Authority     string
	// UpstreamHost is the upstream endpoint's address, "10.244.1.5:8080"
	// (%UPSTREAM_HOST%).
	UpstreamHost string
	// UpstreamCluster is the upstream cluster's name,
	// "outbound|8080||reviews.default.svc.cluster.local"
	// (%UPSTREAM_CLUSTER_RAW%).
	UpstreamCluster string
	// UpstreamLocalAddress is the proxy's address on the upstream connection
	// (%UPSTREAM_LOCAL_ADDRESS%).
	UpstreamLocalAddress string
	// DownstreamLocalAddress and DownstreamRemoteAddress are the proxy's and
	// the client's addresses on the downstream connection
	// (%DOWNSTREAM_LOCAL_ADDRESS%, %DOWNSTREAM_REMOTE_ADDRESS%).
	DownstreamLocalAddress  string
	DownstreamRemoteAddress string
	// RequestedServerName is the TLS SNI the downstream asked for
	// (%REQUESTED_SERVER_NAME%).
	RequestedServerName string
	// RouteName is the name of the route the request took (%ROUTE_NAME%).
	RouteName string
	// UpstreamTransportFailureReason says why the upstream connection failed,
	// such as a TLS error (%UPSTREAM_TRANSPORT_FAILURE_REASON%).
	UpstreamTransportFailureReason string
}

// AccessLogOptions tune an [AccessLogger]; the zero value is fine.
type AccessLogOptions struct {
	// QueueSize is how many lines may wait for the writer before more are
	// dropped (default 4096).
	QueueSize int
	// BufferSize is the writer's buffer size in bytes (default 64 KiB). The
	// buffer is flushed whenever the queue runs empty.
	BufferSize int
	// CloseTimeout bounds how long Close waits for the writer (default 5s).
	CloseTimeout time.Duration
}

// AccessLogger writes [AccessLogEntry] values to an io.Writer as JSON lines.
// It is safe for concurrent use. Log formats the line on the caller's
// goroutine and hands it to one writer goroutine, so lines never interleave
// and a slow, failing or panicking writer never blocks or panics the caller:
// lines are dropped (and counted, see [AccessLogger.Dropped]) instead.
type AccessLogger struct {
	queue   chan *[]byte
	stop    chan struct{}
	done    chan struct{}
	closed  atomic.Bool
	once    sync.Once
	dropped atomic.Uint64
	timeout time.Duration
	sw      safeWriter
	w       *bufio.Writer
	pending uint64 // lines in w not yet flushed; writer goroutine only
}

const maxPooledLine = 64 << 10

var linePool = sync.Pool{New: func() any {
	b := make([]byte, 0, 1024)
	return &b
}}

// NewAccessLogger starts a logger writing to w. Call Close to flush and stop
// it.
func NewAccessLogger(w io.Writer, opts AccessLogOptions) *AccessLogger {
	if opts.QueueSize <= 0 {
		opts.QueueSize = 4096
	}
	if opts.BufferSize <= 0 {
		opts.BufferSize = 64 << 10
	}
	if opts.CloseTimeout <= 0 {
		opts.CloseTimeout = 5 * time.Second
	}
	l := &AccessLogger{
		queue:   make(chan *[]byte, opts.QueueSize),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		timeout: opts.CloseTimeout,
		sw:      safeWriter{w},
	}
	l.w = bufio.NewWriterSize(l.sw, opts.BufferSize)
	go l.run()
	return l
}

// Log queues one line for e. It never blocks: when the queue is full, or the
// logger is closed, the line is dropped. A nil e logs nothing.
func (l *AccessLogger) Log(e *AccessLogEntry) {
	if e == nil {
		return
	}
	if l.closed.Load() {
		l.dropped.Add(1)
		return
	}
	bp := linePool.Get().(*[]byte)
	*bp = AppendAccessLogJSON((*bp)[:0], e)
	*bp = append(*bp, '\n')
	select {
	case l.queue <- bp:
	default:
		l.dropped.Add(1)
		putLine(bp)
	}
}

// Dropped is how many lines were lost: dropped because the queue was full or
// the logger closed, or lost to a failed write.
func (l *AccessLogger) Dropped() uint64 { return l.dropped.Load() }

// Close writes the queued lines, flushes and stops the writer goroutine. It
// waits at most the CloseTimeout for a stuck writer, and then reports it.
// Lines logged after Close are dropped. Close does not close the io.Writer.
func (l *AccessLogger) Close() error {
	l.once.Do(func() {
		l.closed.Store(true)
		close(l.stop)
	})
	t := time.NewTimer(l.timeout)
	defer t.Stop()
	select {
	case <-l.done:
		return nil
	case <-t.C:
		return fmt.Errorf("access log: writer still busy after %v; queued lines may be lost", l.timeout)
	}
}

func putLine(bp *[]byte) {
	if cap(*bp) <= maxPooledLine {
		linePool.Put(bp)
	}
}

func (l *AccessLogger) run() {
	defer close(l.done)
	for {
		select {
		case bp := <-l.queue:
			l.write(bp)
			if len(l.queue) == 0 {
				l.flush()
			}
		case <-l.stop:
			for {
				select {
				case bp := <-l.queue:
					l.write(bp)
				default:
					l.flush()
					return
				}
			}
		}
	}
}

func (l *AccessLogger) write(bp *[]byte) {
	// Flush before a line that does not fit, rather than letting bufio flush
	// part of it: pending then counts exactly the lines a failure loses.
	if l.w.Buffered() > 0 && l.w.Available() < len(*bp) {
		l.flush()
	}
	_, err := l.w.Write(*bp)
	putLine(bp)
	l.pending++
	if err != nil {
		l.fail()
	}
}

func (l *AccessLogger) flush() {
	if l.pending == 0 {
		return
	}
	if err := l.w.Flush(); err != nil {
		l.fail()
		return
	}
	l.pending = 0
}

// fail counts the buffered lines as lost and starts the buffer afresh: a
// bufio.Writer keeps failing once its writer has failed.
func (l *AccessLogger) fail() {
	l.dropped.Add(l.pending)
	l.pending = 0
	l.w.Reset(l.sw)
}

// errWriterPanic stands for a panic of the underlying writer.
var errWriterPanic = errors.New("access log writer panicked")

// safeWriter turns a panic of the underlying writer into an error.
type safeWriter struct{ w io.Writer }

func (s safeWriter) Write(p []byte) (n int, err error) {
	defer func() {
		if recover() != nil {
			n, err = 0, errWriterPanic
		}
	}()
	return s.w.Write(p)
}
