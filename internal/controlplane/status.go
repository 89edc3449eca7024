package controlplane

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/meshway/meshway/internal/manifest"
	"github.com/meshway/meshway/internal/store"
	"github.com/meshway/meshway/internal/translate"
)

// StatusWriter writes the conditions users read on the objects they wrote.
type StatusWriter struct {
	st   store.Store
	logf func(format string, args ...any)
	now  func() time.Time
	// mu serializes Syncs, which write the same objects.
	mu sync.Mutex
}

// NewStatusWriter returns a StatusWriter writing to st; logf receives one
// line per status written (nil: discard).
func NewStatusWriter(st store.Store, logf func(format string, args ...any)) *StatusWriter {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	return &StatusWriter{st: st, logf: logf, now: time.Now}
}

// Sync writes the status translate.ObjectStatuses computes from objs (the
// complete current set of objects, every kind): istio.io/WaypointBound on
// Services, ServiceEntries and WorkloadEntries (removed when the object has
// no waypoint to report), the parent statuses of HTTPRoutes and GRPCRoutes
// whose parents are Services, ServiceEntries or waypoint Gateways (other
// controllers' parent statuses are kept), and WaypointAccepted on
// AuthorizationPolicies.
//
// Only status is written (UpdateStatus, with the resourceVersion of the
// object in objs), and only when it changes: conditions are compared without
// lastTransitionTime, which moves only when a condition's status does.
// observedGeneration is the object's generation. A write that meets a newer
// resourceVersion is skipped: the next Sync sees the newer object. A failure
// on one object does not stop the others: Sync returns them all, joined.
func (w *StatusWriter) Sync(ctx context.Context, objs []manifest.Object) error {
	return w.syncIndexed(ctx, newStoredObjects(objs))
}

func (w *StatusWriter) syncIndexed(ctx context.Context, x *storedObjects) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := x.objectStatuses()
	now := w.now()
	var errs []error
	ref := func(kind string, obj metav1.Object) translate.ObjectRef {
		return translate.ObjectRef{Kind: kind, Ref: translate.Ref{Namespace: obj.GetNamespace(), Name: obj.GetName()}}
	}

	for _, svc := range storedOfKind[*corev1.Service](x, manifest.Service) {
		conds := setCondition(svc.Status.Conditions, translate.ConditionWaypointBound, s.WaypointBound[ref("Service", svc)], now)
		if !sameJSON(conds, svc.Status.Conditions) {
			u := svc.DeepCopy()
			u.Status.Conditions = conds
			errs = append(errs, w.write(ctx, u))
		}
	}
	for _, se := range storedOfKind[*networkingv1.ServiceEntry](x, manifest.ServiceEntry) {
		conds := mergeIstioCondition(se.Status.Conditions, translate.ConditionWaypointBound, s.WaypointBound[ref("ServiceEntry", se)], now)
		if !sameJSON(conds, se.Status.Conditions) {
			u := se.DeepCopy()
			u.Status.Conditions = conds
			errs = append(errs, w.write(ctx, u))
		}
	}
	for _, we := range storedOfKind[*networkingv1.WorkloadEntry](x, manifest.WorkloadEntry) {
		conds := mergeIstioCondition(we.Status.Conditions, translate.ConditionWaypointBound, s.WaypointBound[ref("WorkloadEntry", we)], now)
		if !sameJSON(conds, we.Status.Conditions) {
			u := we.DeepCopy()
			u.Status.Conditions = conds
			errs = append(errs, w.write(ctx, u))
		}
	}
	for _, ap := range storedOfKind[*securityv1.AuthorizationPolicy](x, manifest.AuthorizationPolicy) {
		conds := mergeIstioCondition(ap.Status.Conditions, translate.ConditionWaypointAccepted, s.WaypointAccepted[ref("AuthorizationPolicy", ap)], now)
		if !sameJSON(conds, ap.Status.Conditions) {
			u := ap.DeepCopy()
			u.Status.Conditions = conds
			errs = append(errs, w.write(ctx, u))
		}
	}
	for _, r := range storedOfKind[*gwv1.HTTPRoute](x, manifest.HTTPRoute) {
		parents := mergeRouteParents(r.Status.Parents, s.RouteParents[ref("HTTPRoute", r)], r.Namespace, now)
		if !sameJSON(parents, r.Status.Parents) {
			u := r.DeepCopy()
			u.Status.Parents = parents
			errs = append(errs, w.write(ctx, u))
		}
	}
	for _, r := range storedOfKind[*gwv1.GRPCRoute](x, manifest.GRPCRoute) {
		parents := mergeRouteParents(r.Status.Parents, s.RouteParents[ref("GRPCRoute", r)], r.Namespace, now)
		if !sameJSON(parents, r.Status.Parents) {
			u := r.DeepCopy()
			u.Status.Parents = parents
			errs = append(errs, w.write(ctx, u))
		}
	}
	return errors.Join(errs...)
}

func (w *StatusWriter) write(ctx context.Context, obj manifest.Object) error {
	if err := writeStatus(ctx, w.st, obj); err != nil {
		return err
	}
	k, _ := storedKeyOf(obj)
	w.logf("status of %s updated", k)
	return nil
}

// setCondition sets the condition of type typ to want, or removes it when
// want is nil.
func setCondition(current []metav1.Condition, typ string, want *metav1.Condition, now time.Time) []metav1.Condition {
	if want == nil {
		return removeCondition(current, typ)
	}
	return mergeConditions(current, []metav1.Condition{*want}, now)
}

// mergeRouteParents returns a route's parent statuses with this
// controller's replaced by desired: other controllers' entries are kept,
// in order, followed by desired's; each condition keeps its
// lastTransitionTime while its status stays the same.
func mergeRouteParents(current, desired []gwv1.RouteParentStatus, routeNs string, now time.Time) []gwv1.RouteParentStatus {
	out := []gwv1.RouteParentStatus{}
	for _, p := range current {
		if p.ControllerName != translate.RouteControllerName {
			out = append(out, p)
		}
	}
	for _, want := range desired {
		key := translate.ParentRefKey(want.ParentRef, routeNs)
		var old []metav1.Condition
		for _, p := range current {
			if p.ControllerName == translate.RouteControllerName && translate.ParentRefKey(p.ParentRef, routeNs) == key {
				old = p.Conditions
			}
		}
		if !slices.ContainsFunc(want.Conditions, func(c metav1.Condition) bool {
			return c.Type == string(gwv1.RouteConditionPartiallyInvalid)
		}) {
			// The Gateway API sets PartiallyInvalid only while it is True:
			// once the route's rules are all valid again, it goes.
			old = removeCondition(old, string(gwv1.RouteConditionPartiallyInvalid))
		}
		want.Conditions = mergeConditions(old, want.Conditions, now)
		out = append(out, want)
	}
	return out
}
