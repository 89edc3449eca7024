package translate

import (
	"cmp"
	"reflect"
	"slices"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/meshway/meshway/internal/model"
)

// Translation is the result of translating one set of inputs: every ready
// waypoint's configuration and what Update needs to translate again only the
// waypoints a change can affect.
type Translation struct {
	waypoints map[Ref]*model.Waypoint
	// Warnings are those of the last full translation (Translate, or an
	// Update that had to translate everything). Update does not compute
	// warnings: many are about objects of every namespace.
	Warnings []Warning
	// Full says whether this translation was a full one, so that Warnings
	// are this state's.
	Full bool
	// deps holds, per waypoint, the namespaces its configuration was built
	// from or looked up objects in (sorted); dependents is the reverse.
	deps       map[Ref][]string
	dependents map[string][]Ref
	rootNs     string
}

// Translate translates in fully: WaypointConfigs, keeping what Update needs.
func Translate(in ConfigInputs) *Translation {
	t := newTranslator(in)
	tr := &Translation{waypoints: map[Ref]*model.Waypoint{}, deps: map[Ref][]string{}, Full: true, rootNs: t.rootNs}
	for _, w := range t.binder.Waypoints() {
		tr.waypoints[w.Ref], tr.deps[w.Ref] = t.waypoint(w)
	}
	t.warnUnattached()
	t.warnPolicyTargets()
	tr.Warnings = t.sortedWarnings()
	tr.index()
	return tr
}

func (tr *Translation) index() {
	tr.dependents = map[string][]Ref{}
	for ref, nss := range tr.deps {
		for _, ns := range nss {
			tr.dependents[ns] = append(tr.dependents[ns], ref)
		}
	}
}

// Waypoints returns every waypoint's configuration, sorted by namespace/name.
func (tr *Translation) Waypoints() []*model.Waypoint {
	out := make([]*model.Waypoint, 0, len(tr.waypoints))
	for _, w := range tr.waypoints {
		out = append(out, w)
	}
	slices.SortFunc(out, func(a, b *model.Waypoint) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return out
}

// Waypoint returns one waypoint's configuration, nil if there is none.
func (tr *Translation) Waypoint(ref Ref) *model.Waypoint { return tr.waypoints[ref] }

// Change is one object's change: Old is nil when it was created, New nil
// when it was deleted.
type Change struct{ Old, New any }

// maxRounds bounds Update's widening of the namespaces it reads before it
// gives up and translates everything (see Update).
const maxRounds = 4

// Update returns the translation of objs, which is tr's inputs with changes
// applied, and the waypoints whose configuration it built again (the others
// are tr's, shared); a waypoint in the list that Waypoint no longer returns
// was removed. It is pure: tr and objs are not modified.
//
// It translates only the waypoints the changes can affect, from only the
// objects those can read, and is equal to Translate(objs.Inputs()) but for
// Warnings (tested by TestUpdateEqualsTranslate). The affected waypoints of
// a change to an object in namespace ns are:
//   - the waypoints in ns, and those whose configuration was built from or
//     looked up objects in ns (tr's dependencies);
//   - the waypoints the object's istio.io/use-waypoint label, or its
//     namespace's, names (before and after the change): a binding made or
//     undone;
//   - the Gateways a route names as parents (before and after).
//
// Changes with wider effects make it translate everything: Namespaces and
// GatewayClasses (labels and classes decide binding everywhere), Gateways
// (a waypoint appears, goes, or admits other namespaces), DestinationRules
// (they apply to services of any namespace) and objects in the root
// namespace (mesh-wide policies).
//
// The affected waypoints are then translated from the cluster-scoped
// objects, the DestinationRules and the objects of the root namespace, their
// dependencies' namespaces and the changed ones. A configuration that looks up a
// namespace left out (a VirtualService routing to a Service of another
// namespace, newly) is translated again with it.
func (tr *Translation) Update(objs *Objects, changes []Change) (*Translation, []Ref) {
	refs, nss, full := tr.affected(objs, changes)
	if full {
		next := Translate(objs.Inputs())
		return next, union2(tr.refs(), next.refs())
	}
	var built map[Ref]*model.Waypoint
	var deps map[Ref][]string
	for round := 0; ; round++ {
		if round == maxRounds {
			next := Translate(objs.Inputs())
			return next, union2(tr.refs(), next.refs())
		}
		t := newTranslator(objs.inputsFor(nss))
		built, deps = map[Ref]*model.Waypoint{}, map[Ref][]string{}
		grew := false
		for _, ref := range refs {
			w, ok := t.binder.Waypoint(ref)
			if !ok {
				continue
			}
			built[ref], deps[ref] = t.waypoint(w)
			for _, ns := range deps[ref] {
				if !nss[ns] {
					nss[ns], grew = true, true
				}
			}
		}
		if !grew {
			break
		}
	}
	next := &Translation{
		waypoints: make(map[Ref]*model.Waypoint, len(tr.waypoints)),
		deps:      make(map[Ref][]string, len(tr.deps)),
		Warnings:  tr.Warnings,
		rootNs:    tr.rootNs,
	}
	for ref, w := range tr.waypoints {
		next.waypoints[ref], next.deps[ref] = w, tr.deps[ref]
	}
	for _, ref := range refs {
		delete(next.waypoints, ref)
		delete(next.deps, ref)
		if w, ok := built[ref]; ok {
			next.waypoints[ref], next.deps[ref] = w, deps[ref]
		}
	}
	next.index()
	return next, refs
}

func (tr *Translation) refs() []Ref {
	out := make([]Ref, 0, len(tr.waypoints))
	for ref := range tr.waypoints {
		out = append(out, ref)
	}
	return out
}

// union2 merges two lists of refs, sorted, without duplicates.
func union2(a, b []Ref) []Ref {
	out := append(slices.Clone(a), b...)
	slices.SortFunc(out, compareRefs)
	return slices.Compact(out)
}

func compareRefs(a, b Ref) int {
	return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
}

// affected returns the waypoints changes can affect (sorted) and the
// namespaces translating them reads; full when only a full translation will
// do. See Update.
func (tr *Translation) affected(objs *Objects, changes []Change) (refs []Ref, nss map[string]bool, full bool) {
	set := map[Ref]bool{}
	// The root namespace's policies and Telemetry apply to every waypoint.
	nss = map[string]bool{tr.rootNs: true}
	for _, c := range changes {
		for _, obj := range []any{c.Old, c.New} {
			sc, ok := scopeOf(obj)
			if !ok {
				continue // nil, or a kind translation does not read
			}
			m := obj.(metav1.Object)
			ns := m.GetNamespace()
			if sc != namespaced || ns == tr.rootNs {
				return nil, nil, true
			}
			if _, ok := obj.(*gwv1.Gateway); ok {
				return nil, nil, true
			}
			nss[ns] = true
			for ref := range tr.waypoints {
				if ref.Namespace == ns {
					set[ref] = true
				}
			}
			for _, ref := range tr.dependents[ns] {
				set[ref] = true
			}
			for _, lbls := range []map[string]string{m.GetLabels(), objs.namespaceLabels(ns)} {
				if ref, none, ok := useWaypointLabel(lbls, ns); ok && !none {
					set[ref] = true
				}
			}
			var parents []gwv1.ParentReference
			switch r := obj.(type) {
			case *gwv1.HTTPRoute:
				parents = r.Spec.ParentRefs
			case *gwv1.GRPCRoute:
				parents = r.Spec.ParentRefs
			}
			for _, pr := range parents {
				if k, ok := parentKeyOf(ns, pr); ok && k.kind == "Gateway" {
					set[Ref{k.ns, k.name}] = true
				}
			}
		}
	}
	for ref := range set {
		refs = append(refs, ref)
		nss[ref.Namespace] = true
		for _, ns := range tr.deps[ref] {
			nss[ns] = true
		}
	}
	slices.SortFunc(refs, compareRefs)
	return refs, nss, false
}

// scope says which objects a partial translation must read, whatever
// namespaces it reads: the cluster-scoped ones, and DestinationRules, which
// apply to services of every namespace.
type scope int

const (
	namespaced scope = iota
	clusterScoped
	global
)

// scopeOf classifies an object of a kind ConfigInputs reads; false for
// other kinds (and nil).
func scopeOf(obj any) (scope, bool) {
	switch obj.(type) {
	case *corev1.Namespace, *gwv1.GatewayClass:
		return clusterScoped, true
	case *networkingv1.DestinationRule:
		return global, true
	case nil:
		return 0, false
	}
	var probe ConfigInputs
	return namespaced, probe.Add(obj)
}

// Objects holds the inputs of translation by namespace, so that Update can
// take those of a few namespaces. Set and Delete modify it in place;
// inputs built from it share the objects, which must not be modified.
type Objects struct {
	settings   ConfigInputs // RootNamespace, TrustDomain, ClusterDomain, ServiceEntryNamespaceVisible
	namespaces map[string]map[objectKey]any
	cluster    map[objectKey]any // cluster-scoped and global objects
	// gateways are every namespace's Gateways too: the ztunnels'
	// translation of a few namespaces binds to waypoints of any.
	gateways map[objectKey]*gwv1.Gateway
}

type objectKey struct {
	typ       reflect.Type
	namespace string
	name      string
}

func keyOf(obj any) objectKey {
	m := obj.(metav1.Object)
	return objectKey{reflect.TypeOf(obj), m.GetNamespace(), m.GetName()}
}

// NewObjects returns Objects holding in's objects and settings
// (RootNamespace, TrustDomain, ClusterDomain, ServiceEntryNamespaceVisible).
func NewObjects(in ConfigInputs) *Objects {
	o := &Objects{namespaces: map[string]map[objectKey]any{}, cluster: map[objectKey]any{}, gateways: map[objectKey]*gwv1.Gateway{}}
	o.settings.RootNamespace, o.settings.TrustDomain, o.settings.ClusterDomain = in.RootNamespace, in.TrustDomain, in.ClusterDomain
	o.settings.ServiceEntryNamespaceVisible = in.ServiceEntryNamespaceVisible
	forEachInput(in, func(obj any) { o.Set(obj) })
	return o
}

// Set adds obj, or replaces the object of its kind, namespace and name,
// and returns the one it replaced (nil if none). Objects of kinds
// translation does not read are ignored (and nil returned).
func (o *Objects) Set(obj any) (old any) {
	sc, ok := scopeOf(obj)
	if !ok {
		return nil
	}
	k := keyOf(obj)
	m := o.cluster
	if sc == namespaced {
		if m = o.namespaces[k.namespace]; m == nil {
			m = map[objectKey]any{}
			o.namespaces[k.namespace] = m
		}
	}
	old = m[k]
	m[k] = obj
	if gw, ok := obj.(*gwv1.Gateway); ok {
		o.gateways[k] = gw
	}
	return old
}

// Delete removes the object of obj's kind, namespace and name, and returns
// it (nil if there was none).
func (o *Objects) Delete(obj any) (old any) {
	sc, ok := scopeOf(obj)
	if !ok {
		return nil
	}
	k := keyOf(obj)
	m := o.cluster
	if sc == namespaced {
		m = o.namespaces[k.namespace]
	}
	old = m[k]
	delete(m, k)
	delete(o.gateways, k)
	if sc == namespaced && len(m) == 0 {
		delete(o.namespaces, k.namespace)
	}
	return old
}

// Inputs returns every object, for a full translation.
func (o *Objects) Inputs() ConfigInputs {
	in := o.settings
	for _, obj := range o.cluster {
		in.Add(obj)
	}
	for _, m := range o.namespaces {
		for _, obj := range m {
			in.Add(obj)
		}
	}
	return in
}

// inputsFor returns the cluster-scoped objects, the DestinationRules and the
// objects of the namespaces nss.
func (o *Objects) inputsFor(nss map[string]bool) ConfigInputs {
	in := o.settings
	for _, obj := range o.cluster {
		in.Add(obj)
	}
	for ns := range nss {
		for _, obj := range o.namespaces[ns] {
			in.Add(obj)
		}
	}
	return in
}

// ztunnelInputsFor is inputsFor(nss) with every Gateway of the mesh.
func (o *Objects) ztunnelInputsFor(nss map[string]bool) ConfigInputs {
	in := o.inputsFor(nss)
	for k, gw := range o.gateways {
		if !nss[k.namespace] {
			in.Add(gw)
		}
	}
	return in
}

func (o *Objects) namespaceLabels(ns string) map[string]string {
	if n, ok := o.cluster[objectKey{reflect.TypeFor[*corev1.Namespace](), "", ns}].(*corev1.Namespace); ok {
		return n.Labels
	}
	return nil
}

// forEachInput calls f with every non-nil object of in.
func forEachInput(in ConfigInputs, f func(any)) {
	v := reflect.ValueOf(in)
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		for i := range v.NumField() {
			switch fv := v.Field(i); fv.Kind() {
			case reflect.Struct:
				walk(fv)
			case reflect.Slice:
				for j := range fv.Len() {
					if e := fv.Index(j); !e.IsNil() {
						f(e.Interface())
					}
				}
			}
		}
	}
	walk(v)
}
