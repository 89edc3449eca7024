package manifest

import (
	"bytes"
	"strings"
	"testing"

	istionetworkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

func TestDecodeMultiDocument(t *testing.T) {
	in := `# bookinfo, trimmed
apiVersion: v1
kind: Namespace
metadata:
  name: bookinfo
  labels:
    istio.io/dataplane-mode: ambient
---
apiVersion: v1
kind: Service
metadata:
  name: reviews
  namespace: bookinfo
spec:
  ports:
  - port: 9080
    name: http
---
# only a comment
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: Gateway
metadata:
  name: waypoint
spec:
  gatewayClassName: istio-waypoint
  listeners:
  - name: mesh
    port: 15008
    protocol: HBONE
---
apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata:
  name: istio-site
spec:
  hosts: ["istio.io"]
  ports: [{number: 443, name: https, protocol: TLS}]
`
	docs, err := Decode("in.yaml", strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 4 {
		t.Fatalf("got %d documents, want 4", len(docs))
	}
	if ns, ok := docs[0].Object.(*corev1.Namespace); !ok || ns.Labels["istio.io/dataplane-mode"] != "ambient" {
		t.Errorf("document 1: got %#v", docs[0].Object)
	}
	if svc, ok := docs[1].Object.(*corev1.Service); !ok || svc.Spec.Ports[0].Port != 9080 || docs[1].Index != 2 || docs[1].Line != 9 {
		t.Errorf("document 2: got %#v (index %d line %d)", docs[1].Object, docs[1].Index, docs[1].Line)
	}
	gw, ok := docs[2].Object.(*gwv1.Gateway)
	if !ok || gw.Spec.Listeners[0].Port != 15008 || docs[2].Index != 4 {
		t.Fatalf("document 4: got %#v", docs[2].Object)
	}
	if got := gw.GetObjectKind().GroupVersionKind().Version; got != "v1" {
		t.Errorf("v1beta1 Gateway stored as %s, want v1", got)
	}
	se, ok := docs[3].Object.(*istionetworkingv1.ServiceEntry)
	if !ok || se.Spec.GetHosts()[0] != "istio.io" || se.Spec.GetPorts()[0].GetNumber() != 443 {
		t.Errorf("document 5: got %#v", docs[3].Object)
	}
}

// TestDecodeLineEnds: Windows line ends read as Unix ones (a block scalar
// keeps "\n"), "--- # comment" separates, a last line needs no newline, and
// an error's line counts from the file's first line.
func TestDecodeLineEnds(t *testing.T) {
	in := "apiVersion: v1\r\nkind: ConfigMap\r\nmetadata:\r\n  name: a\r\ndata:\r\n  k: |\r\n    one\r\n    two\r\n" +
		"--- # the second\r\napiVersion: v1\r\nkind: Namespace\r\nmetadata:\r\n  name: b"
	docs, err := Decode("crlf.yaml", strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 2 {
		t.Fatalf("got %d documents, want 2", len(docs))
	}
	if cm, ok := docs[0].Object.(*corev1.ConfigMap); !ok || cm.Data["k"] != "one\ntwo\n" {
		t.Errorf("document 1: got %#v", docs[0].Object)
	}
	if docs[1].Object.GetName() != "b" || docs[1].Line != 10 {
		t.Errorf("document 2: got %s at line %d; want b at line 10", docs[1].Object.GetName(), docs[1].Line)
	}
	_, err = Decode("crlf.yaml", strings.NewReader(strings.Replace(in, "name: b", "name: [b", 1)))
	if err == nil || !strings.Contains(err.Error(), "crlf.yaml:13") {
		t.Errorf("error %v; want one at crlf.yaml:13", err)
	}
}

func TestDecodeJSONAndList(t *testing.T) {
	in := `{"apiVersion":"v1","kind":"List","items":[
  {"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a"}},
  {"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"a"}}]}
{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"k":"v"}}`
	docs, err := Decode("in.json", strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range docs {
		names = append(names, MustKindOf(d.Object).Kind+"/"+d.Object.GetName())
	}
	if got, want := strings.Join(names, " "), "Namespace/a Pod/p ConfigMap/c"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

// TestDecodeErrors: every bad input names the source, the document, the field and what to do.
func TestDecodeErrors(t *testing.T) {
	good := "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ok\n---\n"
	for _, tc := range []struct {
		name, in string
		want     []string
	}{
		{"malformed yaml", good + "apiVersion: v1\nkind: Service\nmetadata:\n  name: [x\n", []string{"f.yaml:9", "document 2", "malformed YAML", "fix the syntax"}},
		{"tab indentation", good + "apiVersion: v1\nkind: Service\nmetadata:\n\tname: x\n", []string{"document 2", "malformed YAML"}},
		{"missing kind", "apiVersion: v1\nmetadata:\n  name: x\n", []string{"document 1", "field kind", "missing"}},
		{"missing apiVersion", "kind: Service\nmetadata:\n  name: x\n", []string{"field apiVersion", "missing"}},
		{"unknown kind", "apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\n", []string{"field kind", `unknown kind "Secret"`, "meshway reads:"}},
		{"unknown apiVersion", "apiVersion: networking.istio.io/v2\nkind: ServiceEntry\nmetadata:\n  name: x\n", []string{"field apiVersion", `"networking.istio.io/v2"`, "use networking.istio.io/v1"}},
		{"missing name", "apiVersion: v1\nkind: Service\nmetadata:\n  namespace: default\n", []string{"field metadata.name", "missing"}},
		{"bad name", "apiVersion: v1\nkind: Service\nmetadata:\n  name: Reviews_1\n", []string{"field metadata.name", `invalid name "Reviews_1"`}},
		{"bad label key", "apiVersion: v1\nkind: Service\nmetadata:\n  name: r\n  labels:\n    'bad key': x\n", []string{"Service r", "field metadata.labels", `invalid label key "bad key"`}},
		{"bad label value", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: r\n  namespace: d\n  labels:\n    app: 'two words'\n", []string{"Pod d/r", "field metadata.labels[app]", `invalid label value "two words"`}},
		{"unknown field", "apiVersion: v1\nkind: Service\nmetadata:\n  name: r\nspec:\n  portz: []\n", []string{"field spec.portz", "unknown field", "check its spelling"}},
		{"wrong type", "apiVersion: v1\nkind: Service\nmetadata:\n  name: r\nspec:\n  ports: 5\n", []string{"Service r", "cannot unmarshal"}},
		{"unknown istio field", "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: se\nspec:\n  hostz: [a]\n", []string{"field spec.hostz", "unknown field"}},
		{"istio number as a word", "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: r\n  namespace: d\nspec:\n  host: reviews\n  trafficPolicy:\n    connectionPool:\n      tcp: {maxConnections: lots}\n",
			[]string{"DestinationRule d/r", "field spec.trafficPolicy.connectionPool.tcp.maxConnections", "must be of type integer"}},
		{"istio enum misspelt", "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: p\n  namespace: d\nspec:\n  action: ALOW\n",
			[]string{"AuthorizationPolicy d/p", "field spec.action", `Unsupported value: "ALOW"`, `"ALLOW", "DENY", "AUDIT", "CUSTOM"`}},
		{"two wrong values", "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: p\n  namespace: d\nspec:\n  action: ALOW\n  rules: [{to: [{operation: {methods: GET}}]}]\n",
			[]string{"field spec.action: Unsupported value", "; field spec.rules[0].to[0].operation.methods: Invalid value", "must be of type array"}},
		{"gateway number as a word", "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata:\n  name: g\nspec:\n  gatewayClassName: c\n  listeners: [{name: m, port: mesh, protocol: HBONE}]\n",
			[]string{"Gateway g", "field spec.listeners[0].port", "must be of type integer"}},
		{"unknown gateway field", "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata:\n  name: g\nspec:\n  listenerz: []\n", []string{"field spec.listenerz"}},
		{"scalar document", "just a string\n", []string{"document 1", "not an object"}},
		{"malformed json", `{"apiVersion": "v1", "kind": }`, []string{"f.yaml:1", "malformed JSON"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			docs, err := Decode("f.yaml", strings.NewReader(tc.in))
			if err == nil {
				t.Fatalf("no error; decoded %d documents", len(docs))
			}
			if !strings.HasPrefix(err.Error(), "f.yaml") {
				t.Errorf("error %q does not start with the source name", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestClusterScopedNamespaceCleared(t *testing.T) {
	docs, err := Decode("f", strings.NewReader("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n  namespace: b\n"))
	if err != nil {
		t.Fatal(err)
	}
	if ns := docs[0].Object.GetNamespace(); ns != "" {
		t.Errorf("namespace of a Namespace = %q, want empty", ns)
	}
}

func TestLookup(t *testing.T) {
	for name, want := range map[string]*Kind{
		"ns": Namespace, "Namespaces": Namespace, "svc": Service, "po": Pod, "deploy": Deployment,
		"se": ServiceEntry, "we": WorkloadEntry, "gtw": Gateway, "ap": AuthorizationPolicy,
		"gateways.gateway.networking.k8s.io": Gateway, "gateway": Gateway, "httproute": HTTPRoute,
		"VirtualService": VirtualService, "dr": DestinationRule, "telemetry": Telemetry, "gc": GatewayClass,
	} {
		got, err := Lookup(name)
		if err != nil || got != want {
			t.Errorf("Lookup(%q) = %v, %v; want %v", name, got, err, want)
		}
	}
	if _, err := Lookup("secrets"); err == nil || !strings.Contains(err.Error(), `resource type "secrets"`) {
		t.Errorf("Lookup(secrets) error = %v", err)
	}
}

func TestRoundTripYAML(t *testing.T) {
	for _, k := range All {
		obj := k.New()
		obj.SetName("x")
		data, err := MarshalYAML(obj)
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		if strings.Contains(string(data), "creationTimestamp") {
			t.Errorf("%s: null creationTimestamp printed:\n%s", k, data)
		}
		docs, err := Decode("rt", strings.NewReader(string(data)))
		if err != nil {
			t.Fatalf("%s: re-reading its own YAML: %v\n%s", k, err, data)
		}
		if got := MustKindOf(docs[0].Object); got != k {
			t.Errorf("round trip of %s gave %s", k, got)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add("apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n  labels: {x: y}\nspec:\n  ports: [{port: 1}]\n")
	f.Add("apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: w}\nspec:\n  listeners: [{name: mesh, port: 15008, protocol: HBONE}]\n---\n")
	f.Add(`{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a"}}]}`)
	f.Add("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: v}\nspec: {hosts: [a], http: [{route: [{destination: {host: a}}]}]}\n")
	f.Add("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: v}\nspec: {action: ALLOW, rules: [{to: [{operation: {methods: [GET]}}]}]}\n")
	f.Fuzz(func(t *testing.T, in string) {
		docs, err := Decode("fuzz", strings.NewReader(in))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz") {
				t.Fatalf("error does not name the source: %v", err)
			}
			return
		}
		for _, d := range docs {
			if d.Object.GetName() == "" {
				t.Fatalf("decoded an object without a name: %#v", d.Object)
			}
			if _, err := MarshalYAML(d.Object); err != nil {
				t.Fatalf("cannot re-encode a decoded object: %v", err)
			}
		}
	})
}

func TestApplyDefaultsService(t *testing.T) {
	docs, err := Decode("f", strings.NewReader("apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports:\n  - port: 9080\n  - port: 80\n    targetPort: http\n    protocol: UDP\n"))
	if err != nil {
		t.Fatal(err)
	}
	svc := docs[0].Object.(*corev1.Service)
	ApplyDefaults(svc)
	if svc.Spec.Type != corev1.ServiceTypeClusterIP {
		t.Errorf("type = %q, want ClusterIP", svc.Spec.Type)
	}
	if p := svc.Spec.Ports[0]; p.TargetPort.IntValue() != 9080 || p.Protocol != corev1.ProtocolTCP {
		t.Errorf("port 0 = %+v, want targetPort 9080/TCP", p)
	}
	if p := svc.Spec.Ports[1]; p.TargetPort.String() != "http" || p.Protocol != corev1.ProtocolUDP {
		t.Errorf("port 1 = %+v, want the given targetPort and protocol kept", p)
	}
}

// BenchmarkDecodePod is what the directory store does for every file at
// start-up: one document, one object.
func BenchmarkDecodePod(b *testing.B) {
	in := []byte("apiVersion: v1\nkind: Pod\nmetadata:\n  name: svc-1-0\n  namespace: ns-1\n  labels:\n    app: svc-1\n    version: v1\nspec:\n  nodeName: node-1\n  serviceAccountName: svc-1\n  containers:\n  - name: app\n    image: example/app:1\n    ports:\n    - containerPort: 8080\n")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode("pod.yaml", bytes.NewReader(in)); err != nil {
			b.Fatal(err)
		}
	}
}
