package telemetry

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
)

// Header names of W3C trace context.
const (
	TraceparentHeader = "traceparent"
	// TracestateHeader carries vendors' state; a proxy forwards it as it is.
	TracestateHeader = "tracestate"
)

// Trace flags. FlagRandom (W3C Trace Context Level 2) says the trace id's
// low 7 bytes are random. The other bits are reserved: a new span zeroes them.
const (
	FlagSampled byte = 0x01
	FlagRandom  byte = 0x02
)

// TraceID is a W3C trace id; all zeros is invalid.
type TraceID [16]byte

// SpanID is a W3C parent-id (span id); all zeros is invalid.
type SpanID [8]byte

// IsValid reports whether t is not all zeros.
func (t TraceID) IsValid() bool { return t != TraceID{} }

// String is t in lowercase hex.
func (t TraceID) String() string { return hex.EncodeToString(t[:]) }

// IsValid reports whether s is not all zeros.
func (s SpanID) IsValid() bool { return s != SpanID{} }

// String is s in lowercase hex.
func (s SpanID) String() string { return hex.EncodeToString(s[:]) }

// SpanContext is the trace context a request carries: its trace, the span
// that sent it and the trace flags.
type SpanContext struct {
	TraceID TraceID
	SpanID  SpanID
	Flags   byte
}

// IsValid reports whether both ids are valid.
func (sc SpanContext) IsValid() bool { return sc.TraceID.IsValid() && sc.SpanID.IsValid() }

// Sampled reports whether the sampled flag is set.
func (sc SpanContext) Sampled() bool { return sc.Flags&FlagSampled != 0 }

// ErrInvalidTraceparent is wrapped by every error of [ParseTraceparent].
var ErrInvalidTraceparent = errors.New("invalid traceparent")

// traceparentLen is the length of a version 00 traceparent:
// "00-" 32 hex "-" 16 hex "-" 2 hex.
const traceparentLen = 55

// ParseTraceparent parses a traceparent header value as W3C Trace Context
// (Level 1, section 3.2) says a receiver must: lowercase hex only, version
// ff and all-zero ids are invalid, version 00 is exactly 55 characters, and a
// later version may append fields after a '-'. Spaces and tabs around the
// value are ignored. On error the request should start a new trace.
func ParseTraceparent(s string) (SpanContext, error) {
	s = strings.Trim(s, " \t")
	var sc SpanContext
	if len(s) < traceparentLen {
		return sc, fmt.Errorf("%w: %d characters, want %d", ErrInvalidTraceparent, len(s), traceparentLen)
	}
	version, ok := hexByte(s[0:2])
	if !ok {
		return sc, fmt.Errorf("%w: version %q is not two lowercase hex digits", ErrInvalidTraceparent, s[0:2])
	}
	if version == 0xff {
		return sc, fmt.Errorf("%w: version ff is forbidden", ErrInvalidTraceparent)
	}
	if version == 0 && len(s) != traceparentLen {
		return sc, fmt.Errorf("%w: version 00 has %d characters, not %d", ErrInvalidTraceparent, len(s), traceparentLen)
	}
	if len(s) > traceparentLen && s[traceparentLen] != '-' {
		return sc, fmt.Errorf("%w: no '-' after the flags", ErrInvalidTraceparent)
	}
	if s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return sc, fmt.Errorf("%w: fields not separated by '-'", ErrInvalidTraceparent)
	}
	if !hexBytes(sc.TraceID[:], s[3:35]) {
		return sc, fmt.Errorf("%w: trace-id is not 32 lowercase hex digits", ErrInvalidTraceparent)
	}
	if !hexBytes(sc.SpanID[:], s[36:52]) {
		return sc, fmt.Errorf("%w: parent-id is not 16 lowercase hex digits", ErrInvalidTraceparent)
	}
	if sc.Flags, ok = hexByte(s[53:55]); !ok {
		return sc, fmt.Errorf("%w: trace-flags are not two lowercase hex digits", ErrInvalidTraceparent)
	}
	if !sc.TraceID.IsValid() {
		return sc, fmt.Errorf("%w: trace-id is all zeros", ErrInvalidTraceparent)
	}
	if !sc.SpanID.IsValid() {
		return sc, fmt.Errorf("%w: parent-id is all zeros", ErrInvalidTraceparent)
	}
	return sc, nil
}

// Traceparent formats sc as a version 00 traceparent header value.
func (sc SpanContext) Traceparent() string {
	return string(sc.AppendTraceparent(make([]byte, 0, traceparentLen)))
}

// AppendTraceparent appends sc as a version 00 traceparent to b.
func (sc SpanContext) AppendTraceparent(b []byte) []byte {
	b = append(b, '0', '0', '-')
	b = hex.AppendEncode(b, sc.TraceID[:])
	b = append(b, '-')
	b = hex.AppendEncode(b, sc.SpanID[:])
	return append(b, '-', hexDigits[sc.Flags>>4], hexDigits[sc.Flags&0xf])
}

// NewRoot starts a trace: random trace and span ids, sampled or not.
func NewRoot(sampled bool) SpanContext {
	var sc SpanContext
	for !sc.TraceID.IsValid() {
		binary.BigEndian.PutUint64(sc.TraceID[:8], rand.Uint64())
		binary.BigEndian.PutUint64(sc.TraceID[8:], rand.Uint64())
	}
	sc.SpanID = newSpanID()
	if sampled {
		sc.Flags = FlagSampled
	}
	return sc
}

// NewChild is the context of a span under parent: the same trace and known
// flags (sampled, random), a new random span id. For an invalid parent it
// starts a new trace with the parent's sampled flag.
func NewChild(parent SpanContext) SpanContext {
	if !parent.IsValid() {
		return NewRoot(parent.Sampled())
	}
	return SpanContext{TraceID: parent.TraceID, SpanID: newSpanID(), Flags: parent.Flags & (FlagSampled | FlagRandom)}
}

func newSpanID() SpanID {
	var id SpanID
	for !id.IsValid() {
		binary.BigEndian.PutUint64(id[:], rand.Uint64())
	}
	return id
}

// randomBits are the trace id's low bits a Sampler decides on: the 7 bytes
// that W3C Trace Context Level 2 requires to be random.
const randomBits = 56

// Sampler decides whether to sample a trace from its trace id alone, so
// every proxy seeing the trace decides the same way. It samples a trace when
// the id's low 56 bits, as a number, fall below percent% of their range.
type Sampler struct {
	threshold uint64 // sample when the low 56 bits are < threshold
}

// NewSampler samples percent (0 to 100; Istio's sampling percentage) of the
// traces. Values out of range are clamped; NaN samples nothing.
func NewSampler(percent float64) Sampler {
	switch {
	case !(percent > 0): // also NaN
		return Sampler{}
	case percent >= 100:
		return Sampler{threshold: 1 << randomBits}
	}
	return Sampler{threshold: uint64(math.Round(percent / 100 * (1 << randomBits)))}
}

// Sample reports whether the trace id is sampled.
func (s Sampler) Sample(id TraceID) bool {
	return binary.BigEndian.Uint64(id[8:])&(1<<randomBits-1) < s.threshold
}

// hexBytes decodes lowercase hex s into dst, len(s) == 2*len(dst).
func hexBytes(dst []byte, s string) bool {
	for i := range dst {
		v, ok := hexByte(s[2*i : 2*i+2])
		if !ok {
			return false
		}
		dst[i] = v
	}
	return true
}

// hexByte decodes two lowercase hex digits.
func hexByte(s string) (byte, bool) {
	hi, ok1 := unhexLower(s[0])
	lo, ok2 := unhexLower(s[1])
	return hi<<4 | lo, ok1 && ok2
}

func unhexLower(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}
