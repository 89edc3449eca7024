package controlplane

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/meshway/meshway/internal/deploy"
	"github.com/meshway/meshway/internal/manifest"
	"github.com/meshway/meshway/internal/store"
	"github.com/meshway/meshway/internal/translate"
)

// deployFieldManager names the Deployer's writes (the server-side apply
// field manager on Kubernetes).
const deployFieldManager = "meshd"

// deployedKinds are the kinds Render gives every waypoint; with
// overlayKinds, which it gives only when the parametersRef overlay asks,
// they are the kinds the Deployer deletes when their Gateway no longer
// wants them.
var (
	deployedKinds = []*manifest.Kind{manifest.ServiceAccount, manifest.Deployment, manifest.Service}
	overlayKinds  = []*manifest.Kind{manifest.HorizontalPodAutoscaler, manifest.PodDisruptionBudget}
)

// Deployer keeps each waypoint Gateway's workload objects in the store and reports Gateway status.
type Deployer struct {
	st   store.Store
	opts deploy.Options
	logf func(format string, args ...any)
	now  func() time.Time

	// mu serializes Syncs: each reads and writes the same objects.
	mu sync.Mutex
	// reported holds the problems already logged, by what they are about,
	// so a problem that persists is logged once, not on every Sync.
	reported map[string]string
	// matched remembers the stored objects found to match their rendering
	// (see matches).
	matched map[storedKey]matchedObject
}

// NewDeployer returns a Deployer writing to st. opts shape the rendered
// objects (deploy.Render); logf receives one line per write and per new
// problem (nil: discard).
func NewDeployer(st store.Store, opts deploy.Options, logf func(format string, args ...any)) *Deployer {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	return &Deployer{st: st, opts: opts, logf: logf, now: time.Now, reported: map[string]string{}, matched: map[storedKey]matchedObject{}}
}

// Sync makes the store match objs (the complete current set of objects, every kind): creates/updates
// rendered objects, deletes orphans, writes the GatewayClass if missing and Gateway status. Idempotent; cheap when nothing changed.
//
// For each Gateway of class istio-waypoint that deploy.Skip does not skip,
// Sync writes the ServiceAccount, Deployment and Service deploy.Render gives
// (server-side apply, field manager "meshd"), unless the stored object
// already has every field rendered; it never overwrites an object that lacks
// the label gateway.istio.io/managed=istio.io-mesh-controller, as Istio does
// not. Objects carrying that label and owned by a Gateway are deleted when
// the Gateway is gone, no longer of class istio-waypoint, or renders without
// them (the embedded store has no garbage collector). A Gateway that cannot
// be rendered (a missing parametersRef ConfigMap, a bad overlay) keeps its
// objects and is reported in its status (Accepted False, InvalidParameters),
// not as an error of Sync. The HorizontalPodAutoscaler and
// PodDisruptionBudget an overlay asks for are written like the others, and
// deleted when it no longer does.
//
// A failure on one object does not stop the others: Sync returns them all,
// joined. A status write that meets a newer resourceVersion is skipped: the
// next Sync sees the newer object.
func (d *Deployer) Sync(ctx context.Context, objs []manifest.Object) error {
	return d.syncIndexed(ctx, newStoredObjects(objs))
}

func (d *Deployer) syncIndexed(ctx context.Context, x *storedObjects) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	errs = append(errs, d.syncGatewayClass(ctx, x))

	configMaps := storedOfKind[*corev1.ConfigMap](x, manifest.ConfigMap)
	desired := map[storedKey]bool{}
	// keep: Gateways whose objects stay as they are (not rendered this time).
	keep := map[translate.Ref]bool{}
	renderErrs := map[translate.Ref]error{}
	var managed []*gwv1.Gateway
	for _, gw := range storedOfKind[*gwv1.Gateway](x, manifest.Gateway) {
		ref := translate.Ref{Namespace: gw.Namespace, Name: gw.Name}
		if string(gw.Spec.GatewayClassName) != deploy.ClassName {
			continue
		}
		if skip, _ := deploy.Skip(gw); skip {
			keep[ref] = true // unmanaged, or a newer controller's
			continue
		}
		managed = append(managed, gw)
		rendered, err := deploy.Render(gw, configMaps, d.opts)
		if err != nil {
			keep[ref], renderErrs[ref] = true, err
			d.reportOnce("render "+ref.String(), "%v (the waypoint is neither deployed nor updated until this is fixed)", err)
			continue
		}
		d.reportOnce("render "+ref.String(), "")
		for _, obj := range rendered {
			if k, ok := storedKeyOf(obj); ok {
				desired[k] = true
			}
			errs = append(errs, d.apply(ctx, x, gw, obj))
		}
	}
	errs = append(errs, d.deleteOrphans(ctx, x, desired, keep)...)
	for k := range d.matched {
		if !desired[k] {
			delete(d.matched, k) // no longer rendered
		}
	}

	attached := x.objectStatuses().AttachedRoutes
	// Each Gateway's status counts its namespace's pods only: handing it
	// every pod made this 500 × 50,000 label matches per change.
	podsByNamespace := map[string][]*corev1.Pod{}
	for k, obj := range x.objs { // unsorted: they are only counted
		if p, ok := obj.(*corev1.Pod); ok && k.kind == manifest.Pod {
			podsByNamespace[p.Namespace] = append(podsByNamespace[p.Namespace], p)
		}
	}
	for _, gw := range managed {
		ref := translate.Ref{Namespace: gw.Namespace, Name: gw.Name}
		name := deploy.ServiceName(gw)
		si := deploy.StatusInputs{Pods: podsByNamespace[gw.Namespace], AttachedRoutes: attached[ref], RenderError: renderErrs[ref]}
		si.Service, _ = x.get(manifest.Service, gw.Namespace, name).(*corev1.Service)
		si.Deployment, _ = x.get(manifest.Deployment, gw.Namespace, name).(*appsv1.Deployment)
		errs = append(errs, d.writeGatewayStatus(ctx, gw, deploy.GatewayStatus(gw, si, d.opts)))
	}
	return errors.Join(errs...)
}

// reportOnce logs msg (a format with args) unless it is what was last
// logged about key; an empty msg forgets key, so the problem is logged
// again if it comes back.
func (d *Deployer) reportOnce(key, msg string, args ...any) {
	if msg == "" {
		delete(d.reported, key)
		return
	}
	line := fmt.Sprintf(msg, args...)
	if d.reported[key] != line {
		d.reported[key] = line
		d.logf("%s", line)
	}
}

// syncGatewayClass creates the istio-waypoint GatewayClass if it is missing
// (Istio never updates it: a user's changes stay) and reports it Accepted
// when its controllerName is the mesh controller's.
func (d *Deployer) syncGatewayClass(ctx context.Context, x *storedObjects) error {
	class, _ := x.get(manifest.GatewayClass, "", deploy.ClassName).(*gwv1.GatewayClass)
	if class == nil {
		created, err := d.st.Create(ctx, deploy.GatewayClass())
		switch {
		case apierrors.IsAlreadyExists(err):
			return nil // created meanwhile: the next Sync sees it
		case err != nil:
			return fmt.Errorf("creating GatewayClass %s: %w", deploy.ClassName, err)
		}
		d.logf("GatewayClass %s created", deploy.ClassName)
		x.put(created)
		class, _ = created.(*gwv1.GatewayClass)
	}
	if class == nil || class.Spec.ControllerName != deploy.ControllerName {
		return nil
	}
	conds := mergeConditions(class.Status.Conditions, deploy.GatewayClassConditions(class), d.now())
	if sameJSON(conds, class.Status.Conditions) {
		return nil
	}
	updated := class.DeepCopy()
	updated.Status.Conditions = conds
	return writeStatus(ctx, d.st, updated)
}

// apply writes one rendered object of gw unless the store already has it.
func (d *Deployer) apply(ctx context.Context, x *storedObjects, gw *gwv1.Gateway, obj manifest.Object) error {
	what := fmt.Sprintf("%s %s/%s", obj.GetObjectKind().GroupVersionKind().Kind, obj.GetNamespace(), obj.GetName())
	owner := fmt.Sprintf("Gateway %s/%s", gw.Namespace, gw.Name)
	kind, err := manifest.KindOf(obj)
	if err != nil {
		d.reportOnce("kind "+what, "%s: %s is not written: the config store does not hold that kind", owner, what)
		return nil
	}
	current := x.get(kind, obj.GetNamespace(), obj.GetName())
	if current != nil && current.GetLabels()[deploy.LabelManaged] != deploy.ManagedValue {
		return fmt.Errorf("%s: not overwriting %s: it exists and was not made for a waypoint (no label %s=%s); rename or delete it, or name the waypoint's objects otherwise with the annotation %s",
			owner, what, deploy.LabelManaged, deploy.ManagedValue, deploy.AnnotationNameOverride)
	}
	if current != nil && d.matches(current, obj) {
		return nil
	}
	written, err := d.st.Apply(ctx, obj, store.ApplyOptions{FieldManager: deployFieldManager, Force: true})
	if err != nil {
		return fmt.Errorf("%s: writing %s: %w", owner, what, err)
	}
	x.put(written)
	verb := "updated"
	if current == nil {
		verb = "created"
	}
	d.logf("%s %s for %s", what, verb, owner)
	return nil
}

// matches is storedMatches, remembered: a stored object found to match
// what was rendered is not compared again (two JSON encodings and a walk)
// while it keeps its resourceVersion and the rendering stays the same,
// which is every object of every waypoint on most changes.
func (d *Deployer) matches(stored, desired manifest.Object) bool {
	k, ok := storedKeyOf(stored)
	if !ok {
		return storedMatches(stored, desired, deployFieldManager)
	}
	if m, ok := d.matched[k]; ok && m.resourceVersion == stored.GetResourceVersion() && reflect.DeepEqual(m.desired, desired) {
		return true
	}
	if !storedMatches(stored, desired, deployFieldManager) {
		delete(d.matched, k)
		return false
	}
	d.matched[k] = matchedObject{resourceVersion: stored.GetResourceVersion(), desired: desired}
	return true
}

// matchedObject is a stored object found to match its rendering.
type matchedObject struct {
	resourceVersion string
	desired         manifest.Object
}

// deleteOrphans deletes the objects the Deployer made (label
// gateway.istio.io/managed=istio.io-mesh-controller, owned by a Gateway)
// that no Gateway wants any more.
func (d *Deployer) deleteOrphans(ctx context.Context, x *storedObjects, desired map[storedKey]bool, keep map[translate.Ref]bool) []error {
	var errs []error
	for _, kind := range slices.Concat(deployedKinds, overlayKinds) {
		for _, obj := range storedOfKind[manifest.Object](x, kind) {
			k := storedKey{kind, obj.GetNamespace(), obj.GetName()}
			owner, ok := gatewayOwner(obj)
			if desired[k] || !ok || obj.GetLabels()[deploy.LabelManaged] != deploy.ManagedValue {
				continue
			}
			ref := translate.Ref{Namespace: obj.GetNamespace(), Name: owner.Name}
			if gw, _ := x.get(manifest.Gateway, ref.Namespace, ref.Name).(*gwv1.Gateway); gw != nil && keep[ref] &&
				(owner.UID == "" || owner.UID == string(gw.UID)) {
				continue
			}
			err := d.st.Delete(ctx, kind, k.namespace, k.name, store.DeleteOptions{ResourceVersion: obj.GetResourceVersion()})
			switch {
			case err == nil:
				d.logf("%s deleted: its Gateway %s no longer wants it", k, ref)
			case apierrors.IsNotFound(err), apierrors.IsConflict(err):
				// Gone already (a cluster's garbage collector), or changed
				// since: the next Sync sees the newer object.
			default:
				errs = append(errs, fmt.Errorf("deleting %s, left by Gateway %s: %w", k, ref, err))
				continue
			}
			x.remove(k)
		}
	}
	return errs
}

// gatewayOwner returns obj's owner reference to a Gateway, if any.
func gatewayOwner(obj manifest.Object) (gatewayOwnerRef, bool) {
	for _, r := range obj.GetOwnerReferences() {
		group, _, _ := strings.Cut(r.APIVersion, "/")
		if r.Kind == "Gateway" && group == gwv1.GroupName {
			return gatewayOwnerRef{Name: r.Name, UID: string(r.UID)}, true
		}
	}
	return gatewayOwnerRef{}, false
}

type gatewayOwnerRef struct{ Name, UID string }

// writeGatewayStatus merges the computed status into gw's and writes it if
// anything changed.
func (d *Deployer) writeGatewayStatus(ctx context.Context, gw *gwv1.Gateway, computed gwv1.GatewayStatus) error {
	now := d.now()
	st := gw.Status.DeepCopy()
	st.Addresses = computed.Addresses
	st.Conditions = mergeConditions(st.Conditions, computed.Conditions, now)
	listeners := make([]gwv1.ListenerStatus, 0, len(computed.Listeners))
	for _, l := range computed.Listeners {
		var old []metav1.Condition
		for _, o := range gw.Status.Listeners {
			if o.Name == l.Name {
				old = o.Conditions
			}
		}
		l.Conditions = mergeConditions(old, l.Conditions, now)
		listeners = append(listeners, l)
	}
	st.Listeners = listeners
	if sameJSON(st, &gw.Status) {
		return nil
	}
	updated := gw.DeepCopy()
	updated.Status = *st
	return writeStatus(ctx, d.st, updated)
}

// writeStatus writes obj's status with obj's resourceVersion, for the
// Deployer and the StatusWriter alike; a conflict or a deleted object is
// skipped, as the next Sync sees the new state.
func writeStatus(ctx context.Context, st store.Store, obj manifest.Object) error {
	_, err := st.UpdateStatus(ctx, obj)
	if err == nil || apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return nil
	}
	kind := obj.GetObjectKind().GroupVersionKind().Kind
	if kind == "" {
		if k, kerr := manifest.KindOf(obj); kerr == nil {
			kind = k.Kind
		}
	}
	return fmt.Errorf("writing the status of %s %s: %w", kind, strings.TrimPrefix(obj.GetNamespace()+"/"+obj.GetName(), "/"), err)
}
