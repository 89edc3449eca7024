package controlplane

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/meshway/meshway/internal/deploy"
	"github.com/meshway/meshway/internal/kube"
	"github.com/meshway/meshway/internal/kube/kubetest"
	"github.com/meshway/meshway/internal/manifest"
	"github.com/meshway/meshway/internal/store"
)

// backendCase is a test of the Deployer or the StatusWriter that runs, the
// same, on every store backend.
type backendCase struct {
	name string
	run  func(t *testing.T, st store.Store)
}

// TestOnEachBackend runs the Deployer and StatusWriter cases against the
// memory store, the directory store (the embedded default) and a real
// kube-apiserver (skipped, saying why, without KUBEBUILDER_ASSETS). One
// control plane serves every case: starting one costs seconds and hundreds
// of megabytes.
func TestOnEachBackend(t *testing.T) {
	cases := slices.Concat(deployerCases, statusWriterCases, controllerCases)
	namespaces := []string{"default", "istio-system"}
	t.Run("memory", func(t *testing.T) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				c.run(t, store.NewMemory(store.Options{InitialNamespaces: namespaces}))
			})
		}
	})
	t.Run("dir", func(t *testing.T) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				st, err := store.OpenDir(t.TempDir(), store.Options{InitialNamespaces: namespaces})
				if err != nil {
					t.Fatal(err)
				}
				c.run(t, st)
			})
		}
	})
	t.Run("kube", func(t *testing.T) {
		if reason := kubetest.Missing(); reason != "" {
			if os.Getenv("CI") != "" {
				t.Fatal("CI must run the tests against a real kube-apiserver: " + reason)
			}
			t.Skip("no Kubernetes control plane: " + reason)
		}
		env, err := kubetest.Start()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := env.Stop(); err != nil {
				t.Errorf("stopping the control plane: %v", err)
			}
		})
		st, err := kube.New(env.Config, "cluster envtest")
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				env.Reset(t)
				c.run(t, st)
			})
		}
	})
}

var deployerCases = []backendCase{
	{"DeployerLifecycle", testDeployerLifecycle},
	{"DeployerUnsupportedListener", testDeployerUnsupportedListener},
	{"DeployerParametersRef", testDeployerParametersRef},
	{"DeployerLeavesOthersObjects", testDeployerLeavesOthersObjects},
	{"DeployerNameOverrideMovesObjects", testDeployerNameOverride},
	{"DeployerRemovesInfrastructureLabels", testDeployerRemovesInfrastructureLabels},
}

// listAll lists every object of every kind: what the control loop hands to Sync.
func listAll(t *testing.T, st store.Store) []manifest.Object {
	t.Helper()
	var out []manifest.Object
	for _, k := range manifest.All {
		objs, err := st.List(t.Context(), k, store.ListOptions{})
		if err != nil {
			t.Fatalf("listing %s: %v", k.Resource, err)
		}
		out = append(out, objs...)
	}
	return out
}

// resourceVersions maps "Kind ns/name" to resourceVersion for every object.
func resourceVersions(t *testing.T, st store.Store) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, obj := range listAll(t, st) {
		k, _ := storedKeyOf(obj)
		out[k.String()] = obj.GetResourceVersion()
	}
	return out
}

func syncDeployer(t *testing.T, d *Deployer, st store.Store) {
	t.Helper()
	if err := d.Sync(t.Context(), listAll(t, st)); err != nil {
		t.Fatalf("Deployer.Sync: %v", err)
	}
}

// testLogf logs what the code under test logs, with the test.
func testLogf(t *testing.T) func(string, ...any) {
	return func(format string, args ...any) { t.Helper(); t.Logf(format, args...) }
}

func create(t *testing.T, st store.Store, obj manifest.Object) manifest.Object {
	t.Helper()
	out, err := st.Create(t.Context(), obj)
	if err != nil {
		t.Fatalf("creating %s %s/%s: %v", manifest.MustKindOf(obj), obj.GetNamespace(), obj.GetName(), err)
	}
	return out
}

func get[T manifest.Object](t *testing.T, st store.Store, kind *manifest.Kind, ns, name string) T {
	t.Helper()
	obj, err := st.Get(t.Context(), kind, ns, name)
	if err != nil {
		t.Fatalf("getting %s %s/%s: %v", kind, ns, name, err)
	}
	return obj.(T)
}

// guideWaypoint is the Gateway `meshctl waypoint apply -n default` writes.
func guideWaypoint(name string) *gwv1.Gateway {
	return &gwv1.Gateway{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: gwv1.GatewaySpec{
			GatewayClassName: deploy.ClassName,
			Listeners:        []gwv1.Listener{{Name: "mesh", Port: deploy.HBONEPort, Protocol: "HBONE"}},
		},
	}
}

// readyPod is a pod of the waypoint's Deployment (its template's labels),
// Ready, as a kubelet or the local runtime would report it.
func readyPod(t *testing.T, st store.Store, name string, dep *appsv1.Deployment) *corev1.Pod {
	t.Helper()
	return create(t, st, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: dep.Namespace, Name: name, Labels: dep.Spec.Template.Labels},
		Spec: corev1.PodSpec{
			ServiceAccountName: dep.Spec.Template.Spec.ServiceAccountName,
			Containers:         []corev1.Container{{Name: "waypoint", Image: "meshway/waypoint:test"}},
		},
		Status: corev1.PodStatus{
			Phase:      corev1.PodRunning,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		},
	}).(*corev1.Pod)
}

func findCondition(conds []metav1.Condition, typ string) *metav1.Condition {
	for i := range conds {
		if conds[i].Type == typ {
			return &conds[i]
		}
	}
	return nil
}

// wantCondition fails unless conds has typ with status, reason and a
// message containing msg.
func wantCondition(t *testing.T, what string, conds []metav1.Condition, typ string, status metav1.ConditionStatus, reason, msg string) *metav1.Condition {
	t.Helper()
	c := findCondition(conds, typ)
	switch {
	case c == nil:
		t.Errorf("%s: no %s condition in %+v", what, typ, conds)
	case c.Status != status || c.Reason != reason || !strings.Contains(c.Message, msg):
		t.Errorf("%s: %s = %s/%s %q, want %s/%s %q", what, typ, c.Status, c.Reason, c.Message, status, reason, msg)
	}
	return c
}

// testDeployerLifecycle follows a waypoint from apply to delete: its
// objects appear with owner references, it is Programmed once a pod is
// ready, a Sync with nothing changed writes nothing, and deleting the
// Gateway removes the objects.
func testDeployerLifecycle(t *testing.T, st store.Store) {
	d := NewDeployer(st, deploy.Options{}, testLogf(t))
	gw := create(t, st, guideWaypoint("waypoint")).(*gwv1.Gateway)
	syncDeployer(t, d, st)

	class := get[*gwv1.GatewayClass](t, st, manifest.GatewayClass, "", deploy.ClassName)
	if class.Spec.ControllerName != deploy.ControllerName {
		t.Errorf("GatewayClass controllerName %q, want %q", class.Spec.ControllerName, deploy.ControllerName)
	}
	wantCondition(t, "GatewayClass", class.Status.Conditions, "Accepted", metav1.ConditionTrue, "Accepted", "Handled by Istio controller")
	for _, kind := range deployedKinds {
		obj, err := st.Get(t.Context(), kind, "default", "waypoint")
		if err != nil {
			t.Fatalf("%s default/waypoint: %v", kind, err)
		}
		if got := obj.GetLabels()[deploy.LabelGatewayName]; got != "waypoint" {
			t.Errorf("%s: label %s = %q, want waypoint", kind, deploy.LabelGatewayName, got)
		}
		refs := obj.GetOwnerReferences()
		if len(refs) != 1 || refs[0].Kind != "Gateway" || refs[0].Name != "waypoint" || refs[0].UID != gw.UID {
			t.Errorf("%s: owner references %+v, want the Gateway (uid %s)", kind, refs, gw.UID)
		}
	}
	dep := get[*appsv1.Deployment](t, st, manifest.Deployment, "default", "waypoint")
	svc := get[*corev1.Service](t, st, manifest.Service, "default", "waypoint")
	if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Port == 15008 && p.Name == "mesh" }) {
		t.Errorf("Service ports %+v lack mesh/15008", svc.Spec.Ports)
	}

	gw = get[*gwv1.Gateway](t, st, manifest.Gateway, "default", "waypoint")
	accepted := *wantCondition(t, "Gateway", gw.Status.Conditions, "Accepted", metav1.ConditionTrue, "Accepted", "Resource accepted")
	wantCondition(t, "Gateway", gw.Status.Conditions, "Programmed", metav1.ConditionFalse, "AddressNotAssigned",
		`Failed to assign to any requested addresses: no instances found for hostname "waypoint.default.svc.cluster.local"`)
	if len(gw.Status.Addresses) != 0 {
		t.Errorf("addresses %+v before any pod is ready, want none", gw.Status.Addresses)
	}

	before := resourceVersions(t, st)
	syncDeployer(t, d, st)
	if after := resourceVersions(t, st); !mapsEqual(before, after) {
		t.Errorf("a Sync with nothing changed wrote: %s", diffVersions(before, after))
	}

	readyPod(t, st, "waypoint-5d8f9c7b6-x2x9z", dep)
	syncDeployer(t, d, st)
	gw = get[*gwv1.Gateway](t, st, manifest.Gateway, "default", "waypoint")
	wantCondition(t, "Gateway", gw.Status.Conditions, "Programmed", metav1.ConditionTrue, "Programmed",
		"Resource programmed, assigned to service(s) waypoint.default.svc.cluster.local:15008")
	if c := findCondition(gw.Status.Conditions, "Accepted"); c != nil && !c.LastTransitionTime.Equal(&accepted.LastTransitionTime) {
		t.Errorf("Accepted lastTransitionTime moved from %v to %v though its status did not change", accepted.LastTransitionTime, c.LastTransitionTime)
	}
	var want []string
	if svc.Spec.ClusterIP != "" { // a cluster assigns one; the embedded store does not
		want = append(want, "IPAddress "+svc.Spec.ClusterIP)
	}
	want = append(want, "Hostname waypoint.default.svc.cluster.local")
	var got []string
	for _, a := range gw.Status.Addresses {
		got = append(got, fmt.Sprintf("%s %s", *a.Type, a.Value))
	}
	if !slices.Equal(got, want) {
		t.Errorf("addresses %q, want %q", got, want)
	}

	if err := st.Delete(t.Context(), manifest.Gateway, "default", "waypoint", store.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	syncDeployer(t, d, st)
	for _, kind := range deployedKinds {
		if _, err := st.Get(t.Context(), kind, "default", "waypoint"); !apierrors.IsNotFound(err) {
			t.Errorf("%s default/waypoint after the Gateway was deleted: err %v, want NotFound", kind, err)
		}
	}
	if _, err := st.Get(t.Context(), manifest.GatewayClass, "", deploy.ClassName); err != nil {
		t.Errorf("the GatewayClass must stay: %v", err)
	}
}

// testDeployerRemovesInfrastructureLabels: a label or annotation taken
// out of the Gateway's spec.infrastructure leaves the rendered objects, as
// server-side apply removes the fields its manager no longer applies; one
// another writer added stays.
func testDeployerRemovesInfrastructureLabels(t *testing.T, st store.Store) {
	d := NewDeployer(st, deploy.Options{}, testLogf(t))
	gw := guideWaypoint("waypoint")
	gw.Spec.Infrastructure = &gwv1.GatewayInfrastructure{
		Labels:      map[gwv1.LabelKey]gwv1.LabelValue{"team": "payments", "tier": "gold"},
		Annotations: map[gwv1.AnnotationKey]gwv1.AnnotationValue{"example.com/owner": "payments"},
	}
	create(t, st, gw)
	syncDeployer(t, d, st)
	dep := get[*appsv1.Deployment](t, st, manifest.Deployment, "default", "waypoint")
	if dep.Labels["team"] != "payments" || dep.Labels["tier"] != "gold" || dep.Annotations["example.com/owner"] != "payments" {
		t.Fatalf("Deployment labels %v, annotations %v: want spec.infrastructure's", dep.Labels, dep.Annotations)
	}
	// Someone else labels the Deployment.
	dep.Labels["cost-center"] = "42"
	if _, err := st.Update(t.Context(), dep); err != nil {
		t.Fatal(err)
	}

	gw = get[*gwv1.Gateway](t, st, manifest.Gateway, "default", "waypoint")
	gw.Spec.Infrastructure = &gwv1.GatewayInfrastructure{Labels: map[gwv1.LabelKey]gwv1.LabelValue{"team": "payments"}}
	if _, err := st.Update(t.Context(), gw); err != nil {
		t.Fatal(err)
	}
	syncDeployer(t, d, st)
	for _, kind := range deployedKinds {
		obj, err := st.Get(t.Context(), kind, "default", "waypoint")
		if err != nil {
			t.Fatalf("%s default/waypoint: %v", kind, err)
		}
		if _, ok := obj.GetLabels()["tier"]; ok {
			t.Errorf("%s: label tier still there after it left spec.infrastructure: %v", kind, obj.GetLabels())
		}
		if _, ok := obj.GetAnnotations()["example.com/owner"]; ok {
			t.Errorf("%s: annotation example.com/owner still there after it left spec.infrastructure: %v", kind, obj.GetAnnotations())
		}
		if obj.GetLabels()["team"] != "payments" {
			t.Errorf("%s: label team lost: %v", kind, obj.GetLabels())
		}
	}
	dep = get[*appsv1.Deployment](t, st, manifest.Deployment, "default", "waypoint")
	if dep.Labels["cost-center"] != "42" {
		t.Errorf("Deployment: the label another writer added is gone: %v", dep.Labels)
	}
	before := resourceVersions(t, st)
	syncDeployer(t, d, st)
	if after := resourceVersions(t, st); !mapsEqual(before, after) {
		t.Errorf("a Sync with nothing changed wrote: %s", diffVersions(before, after))
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func diffVersions(before, after map[string]string) string {
	var out []string
	for k, v := range after {
		if before[k] != v {
			out = append(out, fmt.Sprintf("%s (%q → %q)", k, before[k], v))
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			out = append(out, k+" (deleted)")
		}
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

// testDeployerUnsupportedListener: a listener that is not 15008/HBONE is
// rejected with UnsupportedProtocol while the Gateway stays Accepted.
func testDeployerUnsupportedListener(t *testing.T, st store.Store) {
	gw := guideWaypoint("waypoint")
	gw.Spec.Listeners = append(gw.Spec.Listeners, gwv1.Listener{Name: "http", Port: 8080, Protocol: gwv1.HTTPProtocolType})
	create(t, st, gw)
	syncDeployer(t, NewDeployer(st, deploy.Options{}, testLogf(t)), st)
	got := get[*gwv1.Gateway](t, st, manifest.Gateway, "default", "waypoint")
	wantCondition(t, "Gateway", got.Status.Conditions, "Accepted", metav1.ConditionTrue, "Accepted", "Resource accepted")
	if len(got.Status.Listeners) != 2 {
		t.Fatalf("listener statuses %+v, want mesh and http", got.Status.Listeners)
	}
	wantCondition(t, "listener mesh", got.Status.Listeners[0].Conditions, "Accepted", metav1.ConditionTrue, "Accepted", "No errors found")
	wantCondition(t, "listener http", got.Status.Listeners[1].Conditions, "Accepted", metav1.ConditionFalse, "UnsupportedProtocol",
		`Expected a single listener on port 15008 with protocol "HBONE"`)
}

// testDeployerParametersRef: a parametersRef to a missing ConfigMap leaves
// the Gateway not Accepted (not a Sync error); once the ConfigMap exists its
// overlay applies.
func testDeployerParametersRef(t *testing.T, st store.Store) {
	gw := guideWaypoint("waypoint")
	gw.Spec.Infrastructure = &gwv1.GatewayInfrastructure{ParametersRef: &gwv1.LocalParametersReference{Kind: "ConfigMap", Name: "waypoint-params"}}
	create(t, st, gw)
	d := NewDeployer(st, deploy.Options{}, testLogf(t))
	syncDeployer(t, d, st)
	got := get[*gwv1.Gateway](t, st, manifest.Gateway, "default", "waypoint")
	wantCondition(t, "Gateway", got.Status.Conditions, "Accepted", metav1.ConditionFalse, "InvalidParameters", "ConfigMap default/waypoint-params, which does not exist")
	if _, err := st.Get(t.Context(), manifest.Deployment, "default", "waypoint"); !apierrors.IsNotFound(err) {
		t.Errorf("Deployment without its parameters: err %v, want NotFound", err)
	}

	create(t, st, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "waypoint-params"},
		Data:       map[string]string{"deployment": "spec:\n  replicas: 2\n"},
	})
	syncDeployer(t, d, st)
	dep := get[*appsv1.Deployment](t, st, manifest.Deployment, "default", "waypoint")
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 2 {
		t.Errorf("replicas %v, want 2 from the overlay", dep.Spec.Replicas)
	}
	got = get[*gwv1.Gateway](t, st, manifest.Gateway, "default", "waypoint")
	wantCondition(t, "Gateway", got.Status.Conditions, "Accepted", metav1.ConditionTrue, "Accepted", "Resource accepted")

	// An overlay that asks for a HorizontalPodAutoscaler and a
	// PodDisruptionBudget gets them, as Istio's does; without it they go.
	cm := get[*corev1.ConfigMap](t, st, manifest.ConfigMap, "default", "waypoint-params")
	cm.Data = map[string]string{
		"horizontalPodAutoscaler": "spec:\n  minReplicas: 2\n  maxReplicas: 5\n",
		"podDisruptionBudget":     "spec:\n  minAvailable: 1\n",
	}
	if _, err := st.Update(t.Context(), cm); err != nil {
		t.Fatal(err)
	}
	syncDeployer(t, d, st)
	hpa := get[*autoscalingv2.HorizontalPodAutoscaler](t, st, manifest.HorizontalPodAutoscaler, "default", "waypoint")
	if hpa.Spec.MaxReplicas != 5 || hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas != 2 || hpa.Spec.ScaleTargetRef.Name != "waypoint" {
		t.Errorf("HorizontalPodAutoscaler spec %+v, want 2–5 replicas of Deployment waypoint", hpa.Spec)
	}
	pdb := get[*policyv1.PodDisruptionBudget](t, st, manifest.PodDisruptionBudget, "default", "waypoint")
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 {
		t.Errorf("PodDisruptionBudget minAvailable %v, want 1", pdb.Spec.MinAvailable)
	}
	cm = get[*corev1.ConfigMap](t, st, manifest.ConfigMap, "default", "waypoint-params")
	cm.Data = map[string]string{"deployment": "spec:\n  replicas: 2\n"}
	if _, err := st.Update(t.Context(), cm); err != nil {
		t.Fatal(err)
	}
	syncDeployer(t, d, st)
	for _, kind := range []*manifest.Kind{manifest.HorizontalPodAutoscaler, manifest.PodDisruptionBudget} {
		if _, err := st.Get(t.Context(), kind, "default", "waypoint"); !apierrors.IsNotFound(err) {
			t.Errorf("%s after the overlay dropped it: err %v, want NotFound", kind.Kind, err)
		}
	}
}

// testDeployerLeavesOthersObjects: an existing Service of the waypoint's
// name that the Deployer did not make is neither overwritten nor deleted.
func testDeployerLeavesOthersObjects(t *testing.T, st store.Store) {
	mine := create(t, st, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "waypoint", Labels: map[string]string{"team": "payments"}},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
	})
	create(t, st, guideWaypoint("waypoint"))
	err := NewDeployer(st, deploy.Options{}, testLogf(t)).Sync(t.Context(), listAll(t, st))
	if err == nil || !strings.Contains(err.Error(), "not overwriting Service default/waypoint") {
		t.Errorf("Sync error %v, want one about not overwriting Service default/waypoint", err)
	}
	svc := get[*corev1.Service](t, st, manifest.Service, "default", "waypoint")
	if svc.ResourceVersion != mine.GetResourceVersion() {
		t.Errorf("the user's Service was written")
	}
	if _, err := st.Get(t.Context(), manifest.Deployment, "default", "waypoint"); err != nil {
		t.Errorf("the Deployment must still be written: %v", err)
	}
}

// testDeployerNameOverride: renaming the waypoint's objects with the
// name-override annotation creates the new ones and deletes the old.
func testDeployerNameOverride(t *testing.T, st store.Store) {
	create(t, st, guideWaypoint("waypoint"))
	d := NewDeployer(st, deploy.Options{}, testLogf(t))
	syncDeployer(t, d, st)
	gw := get[*gwv1.Gateway](t, st, manifest.Gateway, "default", "waypoint")
	gw.Annotations = map[string]string{deploy.AnnotationNameOverride: "reviews-waypoint"}
	if _, err := st.Update(t.Context(), gw); err != nil {
		t.Fatal(err)
	}
	syncDeployer(t, d, st)
	for _, kind := range deployedKinds {
		if _, err := st.Get(t.Context(), kind, "default", "reviews-waypoint"); err != nil {
			t.Errorf("%s default/reviews-waypoint: %v", kind, err)
		}
		if _, err := st.Get(t.Context(), kind, "default", "waypoint"); !apierrors.IsNotFound(err) {
			t.Errorf("%s default/waypoint after the rename: err %v, want NotFound", kind, err)
		}
	}
}

// TestContainsJSON: a stored object matches what was rendered when it has
// every rendered field, whatever defaults a store added.
func TestContainsJSON(t *testing.T) {
	tree := func(s string) any {
		var v any
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		have, want string
		contains   bool
	}{
		{`{"a":1,"b":{"c":"x","d":2}}`, `{"b":{"c":"x"}}`, true},
		{`{"a":1}`, `{"a":2}`, false},
		{`{"ports":[{"port":80,"protocol":"TCP"}]}`, `{"ports":[{"port":80}]}`, true},
		{`{"ports":[{"port":80},{"port":81}]}`, `{"ports":[{"port":80}]}`, false},
		{`{}`, `{"strategy":{},"resources":{},"creationTimestamp":null,"list":[]}`, true},
		{`{}`, `{"labels":{"a":"b"}}`, false},
	} {
		if got := containsJSON(tree(tc.have), tree(tc.want)); got != tc.contains {
			t.Errorf("containsJSON(%s, %s) = %v, want %v", tc.have, tc.want, got, tc.contains)
		}
	}
}
