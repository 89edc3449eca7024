package telemetry

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// startTimeLayout is Envoy's default %START_TIME% format, in UTC.
const startTimeLayout = "2006-01-02T15:04:05.000Z"

// AppendAccessLogJSON appends e to b as one JSON object, without a newline,
// and returns the extended buffer. The keys are Istio's, in the sorted order
// Envoy writes them.
func AppendAccessLogJSON(b []byte, e *AccessLogEntry) []byte {
	b = append(b, '{')
	b = appendStringField(b, "authority", e.Authority)
	b = appendIntField(b, "bytes_received", e.BytesReceived)
	b = appendIntField(b, "bytes_sent", e.BytesSent)
	b = appendStringField(b, "connection_termination_details", e.ConnectionTerminationDetails)
	b = appendStringField(b, "downstream_local_address", e.DownstreamLocalAddress)
	b = appendStringField(b, "downstream_remote_address", e.DownstreamRemoteAddress)
	b = appendIntField(b, "duration", int64(max(e.Duration, 0)/time.Millisecond))
	b = appendStringField(b, "method", e.Method)
	b = appendStringField(b, "path", e.Path)
	b = appendStringField(b, "protocol", e.Protocol)
	b = appendStringField(b, "request_id", e.RequestID)
	b = appendStringField(b, "requested_server_name", e.RequestedServerName)
	b = appendIntField(b, "response_code", int64(e.ResponseCode))
	b = appendStringField(b, "response_code_details", e.ResponseCodeDetails)
	b = appendStringField(b, "response_flags", or(e.ResponseFlags, NoFlags))
	b = appendStringField(b, "route_name", e.RouteName)
	b = appendKey(b, "start_time")
	if e.StartTime.IsZero() {
		b = append(b, "null"...)
	} else {
		b = append(b, '"')
		b = e.StartTime.UTC().AppendFormat(b, startTimeLayout)
		b = append(b, '"')
	}
	b = appendStringField(b, "upstream_cluster", e.UpstreamCluster)
	b = appendStringField(b, "upstream_host", e.UpstreamHost)
	b = appendStringField(b, "upstream_local_address", e.UpstreamLocalAddress)
	b = appendKey(b, "upstream_service_time")
	if e.UpstreamHost == "" {
		b = append(b, "null"...)
	} else {
		b = append(b, '"')
		b = strconv.AppendInt(b, int64(max(e.UpstreamServiceTime, 0)/time.Millisecond), 10)
		b = append(b, '"')
	}
	b = appendStringField(b, "upstream_transport_failure_reason", e.UpstreamTransportFailureReason)
	b = appendStringField(b, "user_agent", e.UserAgent)
	b = appendStringField(b, "x_forwarded_for", e.XForwardedFor)
	return append(b, '}')
}

// appendKey appends "key": (keys are plain ASCII).
func appendKey(b []byte, key string) []byte {
	if b[len(b)-1] != '{' {
		b = append(b, ',')
	}
	b = append(b, '"')
	b = append(b, key...)
	return append(b, '"', ':')
}

func appendStringField(b []byte, key, v string) []byte {
	b = appendKey(b, key)
	if v == "" {
		return append(b, "null"...)
	}
	return appendJSONString(b, v)
}

func appendIntField(b []byte, key string, v int64) []byte {
	return strconv.AppendInt(appendKey(b, key), v, 10)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string. Like encoding/json it escapes
// control characters, <, >, & and U+2028/U+2029, and replaces invalid UTF-8
// with U+FFFD, so any header value makes a valid line.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
