package store

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"

	"github.com/meshway/meshway/internal/manifest"
)

// The status of an object is its struct's field whose JSON name is
// "status". Setting it on the typed object spares what the store used to
// do on every read of a status file and every write: render the object to
// a JSON map, swap the status and decode it again (three encodings of the
// whole object, most of the store's garbage at start-up, when 50,000 pods
// each have a status file).

// statusFields caches, per Go type of object, the index of its status
// field (-1: the kind has none, a ConfigMap).
var statusFields sync.Map // reflect.Type → int

// statusField returns obj's status field, settable, or an invalid Value
// when its kind has none.
func statusField(obj manifest.Object) reflect.Value {
	v := reflect.ValueOf(obj)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return reflect.Value{}
	}
	v = v.Elem()
	i, ok := statusFields.Load(v.Type())
	if !ok {
		i = statusIndex(v.Type())
		statusFields.Store(v.Type(), i)
	}
	if i.(int) < 0 {
		return reflect.Value{}
	}
	return v.Field(i.(int))
}

func statusIndex(t reflect.Type) int {
	for i := range t.NumField() {
		f := t.Field(i)
		if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name == "status" && f.IsExported() {
			return i
		}
	}
	return -1
}

// setStatusJSON replaces obj's status with status (JSON), or clears it when
// status is nil. On an error obj is left without a status.
func setStatusJSON(obj manifest.Object, status []byte) error {
	f := statusField(obj)
	if !f.IsValid() {
		if status == nil || string(status) == "null" {
			return nil
		}
		return fmt.Errorf("%s has no status", manifest.MustKindOf(obj).Kind)
	}
	f.SetZero()
	if status == nil {
		return nil
	}
	if err := json.Unmarshal(status, f.Addr().Interface()); err != nil {
		f.SetZero()
		return err
	}
	return nil
}

// withStatusOf returns a copy of obj carrying a copy of from's status; ok
// is false when the two are not of one Go type (the caller then goes
// through JSON).
func withStatusOf(obj, from manifest.Object) (out manifest.Object, ok bool) {
	if reflect.TypeOf(obj) != reflect.TypeOf(from) {
		return nil, false
	}
	out = copyObject(obj)
	dst, src := statusField(out), statusField(from)
	if !dst.IsValid() {
		return out, true
	}
	dst.SetZero()
	// Every status type of the kinds the store holds has a generated
	// DeepCopyInto (Kubernetes, Gateway API, Istio's IstioStatus).
	if m := src.Addr().MethodByName("DeepCopyInto"); m.IsValid() {
		m.Call([]reflect.Value{dst.Addr()})
	} else {
		dst.Set(statusField(copyObject(from)))
	}
	return out, true
}
