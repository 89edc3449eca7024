package wire

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
)

// fieldDiffs is a cmp.Reporter that collects the fields that differ, by
// path with the indices left out (Waypoint.Clusters[].Endpoints[].Weight),
// each with one example of the two values: on a filled configuration a
// plain cmp.Diff runs to thousands of lines that never name the field.
type fieldDiffs struct {
	path    cmp.Path
	example map[string]string
}

func (r *fieldDiffs) PushStep(ps cmp.PathStep) { r.path = append(r.path, ps) }
func (r *fieldDiffs) PopStep()                 { r.path = r.path[:len(r.path)-1] }

func (r *fieldDiffs) Report(rs cmp.Result) {
	if rs.Equal() {
		return
	}
	if r.example == nil {
		r.example = map[string]string{}
	}
	p := fieldPath(r.path)
	if _, seen := r.example[p]; !seen {
		x, y := r.path.Last().Values()
		r.example[p] = fmt.Sprintf("%s: before %s, after %s", p, show(x), show(y))
	}
}

// String lists the differing fields, sorted, one a line.
func (r *fieldDiffs) String() string {
	var lines []string
	for _, e := range r.example {
		lines = append(lines, "  "+e)
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

var protoMessageType = reflect.TypeFor[protocmp.Message]()

func fieldPath(path cmp.Path) string {
	var b strings.Builder
	for i, step := range path {
		switch s := step.(type) {
		case cmp.StructField:
			b.WriteString("." + s.Name())
		case cmp.SliceIndex:
			b.WriteString("[]")
		case cmp.MapIndex:
			// protocmp turns a message into a map from field name.
			if i > 0 && path[i-1].Type() == protoMessageType {
				fmt.Fprintf(&b, ".%v", s.Key())
			} else {
				b.WriteString("[]")
			}
		}
	}
	root := path.Index(0).Type()
	for root.Kind() == reflect.Pointer {
		root = root.Elem()
	}
	return root.Name() + b.String()
}

func show(v reflect.Value) string {
	if !v.IsValid() {
		return "(absent)"
	}
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return "nil"
		}
		v = v.Elem()
	}
	return fmt.Sprintf("%v", v)
}
