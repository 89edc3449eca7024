package wire

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/meshway/meshway/internal/model"
)

// fieldError is a conversion error and the path of the field it is about,
// e.g. clusters[2].endpoints[0].weight. Paths use the model's (and the
// protobuf JSON's) lowerCamelCase field names, as Validate does.
type fieldError struct {
	path string
	err  error
}

func (e *fieldError) Error() string { return e.path + ": " + e.err.Error() }
func (e *fieldError) Unwrap() error { return e.err }

// within prefixes the path of err with the field that contains it. Paths
// are built only on failure, so converting a good configuration allocates
// no error context.
func within(field string, err error) error {
	if err == nil {
		return nil
	}
	var fe *fieldError
	if errors.As(err, &fe) {
		sep := "."
		if fe.path[0] == '[' {
			sep = ""
		}
		return &fieldError{path: field + sep + fe.path, err: fe.err}
	}
	return &fieldError{path: field, err: err}
}

// checker converts the scalars the model holds in narrower or different
// types, remembering the first field that does not fit, so that a message
// converts as one expression and reports its first bad field.
type checker struct{ err error }

func (c *checker) fail(field string, err error) {
	if c.err == nil {
		c.err = within(field, err)
	}
}

// int converts an int64 to the model's int, which is 32 bits wide on some
// platforms.
func (c *checker) int(field string, v int64) int {
	n := int(v)
	if int64(n) != v {
		c.fail(field, errIntRange(v))
	}
	return n
}

func errIntRange(v int64) error {
	return fmt.Errorf("%d does not fit in an int on this platform", v)
}

// port converts a uint32 to the model's uint16 port.
func (c *checker) port(field string, v uint32) uint16 {
	if v > math.MaxUint16 {
		c.fail(field, fmt.Errorf("port %d is out of range 0-65535", v))
	}
	return uint16(v)
}

// duration converts an optional protobuf duration; unset is zero.
func (c *checker) duration(field string, d *durationpb.Duration) model.Duration {
	if d == nil {
		return 0
	}
	if err := d.CheckValid(); err != nil {
		c.fail(field, err)
		return 0
	}
	v := d.AsDuration()
	// AsDuration saturates: a duration it cannot hold does not come back.
	if back := durationpb.New(v); back.GetSeconds() != d.GetSeconds() || back.GetNanos() != d.GetNanos() {
		c.fail(field, fmt.Errorf("duration %ds is out of range (at most about 292 years)", d.GetSeconds()))
		return 0
	}
	return model.Duration(v)
}

// time converts an optional protobuf timestamp; unset is the zero time.
func (c *checker) time(field string, ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	if err := ts.CheckValid(); err != nil {
		c.fail(field, err)
		return time.Time{}
	}
	return ts.AsTime()
}

// durationPB leaves zero durations out of the message.
func durationPB(d model.Duration) *durationpb.Duration {
	if d == 0 {
		return nil
	}
	return durationpb.New(time.Duration(d))
}

// timestampPB leaves the zero time (unknown) out of the message.
func timestampPB(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// pbList converts each element of a model slice; none gives nil.
func pbList[M, P any](in []M, conv func(*M) *P) []*P {
	if len(in) == 0 {
		return nil
	}
	out := make([]*P, len(in))
	for i := range in {
		out[i] = conv(&in[i])
	}
	return out
}

// modelList converts each element of a repeated message field that cannot
// fail to convert; none gives nil.
func modelList[P, M any](in []*P, conv func(*P) M) []M {
	if len(in) == 0 {
		return nil
	}
	out := make([]M, len(in))
	for i, p := range in {
		out[i] = conv(p)
	}
	return out
}

// checkedModelList converts each element of a repeated message field,
// stopping at the first that fails and naming it by field and index.
func checkedModelList[P, M any](field string, in []*P, conv func(*P) (M, error)) ([]M, error) {
	if len(in) == 0 {
		return nil, nil
	}
	out := make([]M, len(in))
	for i, p := range in {
		m, err := conv(p)
		if err != nil {
			return nil, within(fmt.Sprintf("%s[%d]", field, i), err)
		}
		out[i] = m
	}
	return out, nil
}

// stringList copies a string list so model and message never share
// memory; none gives nil.
func stringList(in []string) []string {
	if len(in) == 0 {
		return nil
	}
	return append([]string(nil), in...)
}

// ints converts the model's []int to int64s.
func ints(in []int) []int64 {
	if len(in) == 0 {
		return nil
	}
	out := make([]int64, len(in))
	for i, v := range in {
		out[i] = int64(v)
	}
	return out
}

// ints converts a repeated int64 to the model's []int.
func (c *checker) ints(field string, in []int64) []int {
	if len(in) == 0 {
		return nil
	}
	out := make([]int, len(in))
	for i, v := range in {
		out[i] = int(v)
		if int64(out[i]) != v {
			c.fail(fmt.Sprintf("%s[%d]", field, i), errIntRange(v))
		}
	}
	return out
}

// labels copies a label map; none gives nil.
func labels(in map[string]string) map[string]string {
	if len(in) == 0 {
		return nil
	}
	return maps.Clone(in)
}

// ptr returns a pointer to a copy of *p, or nil, so that model and message
// never share an optional scalar.
func ptr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
