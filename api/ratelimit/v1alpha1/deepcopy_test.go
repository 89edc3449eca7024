package v1alpha1

import (
	"reflect"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fill sets every settable field reachable from v to a non-zero value:
// pointers allocated, slices and maps of one element.
func fill(v reflect.Value, depth int) {
	if depth > 12 {
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), depth+1)
	case reflect.Struct:
		for i := range v.NumField() {
			if f := v.Field(i); f.CanSet() {
				fill(f, depth+1)
			}
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0), depth+1)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k, depth+1)
		fill(e, depth+1)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(1)
	}
}

// shared reports a path where a and b (equal values) share memory.
func shared(a, b reflect.Value, at string) string {
	switch a.Kind() {
	case reflect.Pointer:
		if a.IsNil() {
			return ""
		}
		if a.Pointer() == b.Pointer() {
			return at
		}
		return shared(a.Elem(), b.Elem(), at)
	case reflect.Slice:
		if a.Len() > 0 && a.Pointer() == b.Pointer() {
			return at
		}
		for i := range a.Len() {
			if p := shared(a.Index(i), b.Index(i), at+"[]"); p != "" {
				return p
			}
		}
	case reflect.Map:
		if a.Len() > 0 && a.Pointer() == b.Pointer() {
			return at
		}
	case reflect.Struct:
		for i := range a.NumField() {
			if p := shared(a.Field(i), b.Field(i), at+"."+a.Type().Field(i).Name); p != "" {
				return p
			}
		}
	}
	return ""
}

func TestDeepCopy(t *testing.T) {
	for _, in := range []any{&LocalRateLimitPolicy{}, &LocalRateLimitPolicyList{}} {
		fill(reflect.ValueOf(in).Elem(), 0)
		var out any
		switch in := in.(type) {
		case *LocalRateLimitPolicy:
			out = in.DeepCopyObject()
			if in.Spec.Rules[0].ClientSelectors[0].Headers[0].Value == nil || in.Spec.Rules[0].Burst == nil {
				t.Fatal("fill left fields unset")
			}
		case *LocalRateLimitPolicyList:
			out = in.DeepCopyObject()
		}
		if diff := cmp.Diff(in, out); diff != "" {
			t.Errorf("%T: DeepCopy differs (-in +out):\n%s", in, diff)
		}
		if p := shared(reflect.ValueOf(in), reflect.ValueOf(out), reflect.TypeOf(in).Elem().Name()); p != "" {
			t.Errorf("%T: DeepCopy shares %s with the original", in, p)
		}
	}
	var nilPolicy *LocalRateLimitPolicy
	if nilPolicy.DeepCopy() != nil || nilPolicy.DeepCopyObject() != nil {
		t.Error("DeepCopy of nil is not nil")
	}
}

func TestDefaults(t *testing.T) {
	if got := (&HeaderMatch{}).MatchType(); got != HeaderMatchExact {
		t.Errorf("HeaderMatch default %s", got)
	}
	if got := (&SourceMatch{}).MatchType(); got != SourceMatchExact {
		t.Errorf("SourceMatch default %s", got)
	}
	if got := (&PrincipalMatch{}).MatchType(); got != SourceMatchExact {
		t.Errorf("PrincipalMatch default %s", got)
	}
	if got := (&RouteRef{}).EffectiveKind(); got != RouteKindHTTPRoute {
		t.Errorf("RouteRef default %s", got)
	}
	d := SourceMatchDistinct
	if got := (&PrincipalMatch{Type: &d}).MatchType(); got != d {
		t.Errorf("PrincipalMatch Distinct: %s", got)
	}
}
