package wire

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/meshway/meshway/api/meshpb"
	"github.com/meshway/meshway/internal/model"
)

// TestEveryModelFieldSurvives fills every exported field of model.Waypoint,
// recursively, with a distinct non-zero value and expects the round trip to
// keep them all: a field added to the model and forgotten in
// waypoint.proto or in this package fails here, named by its path.
func TestEveryModelFieldSurvives(t *testing.T) {
	var w model.Waypoint
	f := &modelFiller{}
	if err := f.fill(reflect.ValueOf(&w).Elem(), "Waypoint"); err != nil {
		t.Fatal(err)
	}
	var diffs fieldDiffs
	if !cmp.Equal(&w, roundTrip(t, &w), cmp.Reporter(&diffs)) {
		t.Errorf("the round trip lost or changed model fields; give each its counterpart in "+
			"api/meshpb/waypoint.proto (then make gen) and convert it in internal/push/wire:\n%s", &diffs)
	}
}

// TestEveryProtoFieldSurvives is the other direction: every field of the
// message, set, must come back from the model, so a field added to
// waypoint.proto but not converted fails here.
func TestEveryProtoFieldSurvives(t *testing.T) {
	pb := &meshpb.WaypointConfig{}
	f := &protoFiller{}
	if err := f.fill(pb.ProtoReflect()); err != nil {
		t.Fatal(err)
	}
	w, err := ToModel(pb)
	if err != nil {
		t.Fatalf("ToModel: %v", err)
	}
	// proto.Equal first: cmp on a message this size takes seconds.
	if back := Waypoint(w); !proto.Equal(pb, back) {
		var diffs fieldDiffs
		cmp.Equal(pb, back, protocmp.Transform(), cmp.Reporter(&diffs))
		t.Errorf("message fields lost or changed through the model; convert each in internal/push/wire:\n%s", &diffs)
	}
}

// modelFiller sets every field it reaches to a value no other field has,
// so that two fields swapped in the conversion show too.
type modelFiller struct{ n int64 }

var timeType = reflect.TypeFor[time.Time]()

func (f *modelFiller) fill(v reflect.Value, path string) error {
	f.n++
	if v.Type() == timeType {
		// Timestamps carry nanoseconds; the location does not travel
		// (the proxy gets UTC), and cmp compares times with Equal.
		v.Set(reflect.ValueOf(time.Unix(1_700_000_000+f.n, f.n).UTC()))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d", f.n))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if v.OverflowInt(f.n) {
			return fmt.Errorf("%s: %d overflows %s", path, f.n, v.Type())
		}
		v.SetInt(f.n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if v.OverflowUint(uint64(f.n)) {
			return fmt.Errorf("%s: %d overflows %s", path, f.n, v.Type())
		}
		v.SetUint(uint64(f.n))
	case reflect.Float32, reflect.Float64:
		v.SetFloat(float64(f.n) + 0.5)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		if err := f.fill(p.Elem(), path); err != nil {
			return err
		}
		v.Set(p)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range s.Len() {
			if err := f.fill(s.Index(i), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMapWithSize(v.Type(), 2)
		for i := range 2 {
			k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
			if err := f.fill(k, fmt.Sprintf("%s.key%d", path, i)); err != nil {
				return err
			}
			if err := f.fill(e, fmt.Sprintf("%s[%v]", path, k)); err != nil {
				return err
			}
			m.SetMapIndex(k, e)
		}
		v.Set(m)
	case reflect.Struct:
		for i := range v.NumField() {
			sf := v.Type().Field(i)
			at := path + "." + sf.Name
			if !sf.IsExported() {
				return fmt.Errorf("%s: unexported field in the model; the wire can carry only exported fields", at)
			}
			if err := f.fill(v.Field(i), at); err != nil {
				return err
			}
			// A struct type whose fields are all unexported (netip.Addr,
			// say) would stay zero and pass unchecked.
			if v.Field(i).IsZero() {
				return fmt.Errorf("%s (%s) is still zero after filling; teach modelFiller its type", at, sf.Type)
			}
		}
	default:
		return fmt.Errorf("%s: cannot fill a %s; teach modelFiller its type", path, v.Type())
	}
	return nil
}

// protoFiller sets every field of a message, recursively, to distinct
// values the model can hold: small numbers, valid durations and times.
type protoFiller struct{ n int64 }

func (f *protoFiller) fill(m protoreflect.Message) error {
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		switch {
		case fd.IsMap():
			mp := m.Mutable(fd).Map()
			for range 2 {
				k, err := f.scalar(fd.MapKey())
				if err != nil {
					return err
				}
				v, err := f.scalar(fd.MapValue())
				if err != nil {
					return err
				}
				mp.Set(k.MapKey(), v)
			}
		case fd.IsList():
			l := m.Mutable(fd).List()
			for range 2 {
				if fd.Message() != nil {
					e := l.NewElement()
					if err := f.fill(e.Message()); err != nil {
						return err
					}
					l.Append(e)
					continue
				}
				v, err := f.scalar(fd)
				if err != nil {
					return err
				}
				l.Append(v)
			}
		case fd.Message() != nil:
			if err := f.fill(m.Mutable(fd).Message()); err != nil {
				return err
			}
		default:
			v, err := f.scalar(fd)
			if err != nil {
				return err
			}
			m.Set(fd, v)
		}
	}
	return nil
}

func (f *protoFiller) scalar(fd protoreflect.FieldDescriptor) (protoreflect.Value, error) {
	f.n++
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(true), nil
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(fmt.Sprintf("%s-%d", fd.Name(), f.n)), nil
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(int32(f.n)), nil
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(f.n), nil
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(uint32(f.n)), nil
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64(uint64(f.n)), nil
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64(float64(f.n) + 0.5), nil
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32(float32(f.n) + 0.5), nil
	}
	return protoreflect.Value{}, fmt.Errorf("%s: cannot fill a %s field; teach protoFiller its kind", fd.FullName(), fd.Kind())
}
