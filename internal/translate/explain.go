package translate

import (
	"maps"
	"slices"
	"strings"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Explanation answers "which waypoint, if any, carries traffic addressed to
// X, and why". Its JSON shape is a public contract (meshctl explain -o json).
type Explanation struct {
	// Target is "<Kind>/<ns>/<name>", Kind as in Kubernetes.
	Target string `json:"target"`
	// Service explains service-addressed traffic; null for Pods and
	// WorkloadEntries, which have no service address.
	Service *TrafficExplanation `json:"service"`
	// Workloads explains workload-addressed traffic: the target itself for a
	// Pod or WorkloadEntry, else each workload the Service or ServiceEntry
	// selects. Never null.
	Workloads []WorkloadExplanation `json:"workloads"`
	// Warnings lists every trap that applies, deduplicated, in a stable
	// order; each is a sentence that says what to do. Never null.
	Warnings []string `json:"warnings"`
}

// TrafficExplanation explains service-addressed traffic.
type TrafficExplanation struct {
	// Waypoint is "ns/name", or null when traffic goes direct.
	Waypoint *string `json:"waypoint"`
	// Reason names the label and the rule that decided, in one sentence.
	Reason   string   `json:"reason"`
	Decision Decision `json:"-"`
}

// WorkloadExplanation explains traffic addressed to one workload's IP.
type WorkloadExplanation struct {
	// Name is "Pod/<ns>/<name>", "WorkloadEntry/<ns>/<name>" or, for an
	// inline ServiceEntry endpoint, "ServiceEntry/<ns>/<se>/<address>".
	Name     string   `json:"name"`
	Waypoint *string  `json:"waypoint"`
	Reason   string   `json:"reason"`
	Decision Decision `json:"-"`
}

// subject is one explained object: what it is called in sentences and the
// labels binding reads from it.
type subject struct {
	kind      string // Kubernetes kind, or "ServiceEntry endpoint"
	namespace string
	name      string
	id        string // the Explanation/WorkloadExplanation name
	labels    map[string]string
	workload  bool // workload rules apply (pods, entries, endpoints)
}

func (s subject) String() string { return s.kind + " " + s.namespace + "/" + s.name }

func objectSubject(kind, ns, name string, lbls map[string]string, workload bool) subject {
	return subject{kind: kind, namespace: ns, name: name, id: kind + "/" + ns + "/" + name, labels: lbls, workload: workload}
}

// subjectsPlaceholder stands for "the objects this warning is about" in a
// warning that applies alike to several of them; finish names them all.
const subjectsPlaceholder = "\x00subjects\x00"

// explainer accumulates warnings in order without duplicates; a warning with
// subjectsPlaceholder collects the subjects it applies to.
type explainer struct {
	b        *Binder
	warnings []string
	seen     map[string]bool
	subjects map[string][]string // per placeholder warning, in order
}

func (x *explainer) warn(s subject, ws ...string) {
	for _, w := range ws {
		if strings.Contains(w, subjectsPlaceholder) && !slices.Contains(x.subjects[w], s.String()) {
			x.subjects[w] = append(x.subjects[w], s.String())
		}
		if !x.seen[w] {
			x.seen[w] = true
			x.warnings = append(x.warnings, w)
		}
	}
}

func (b *Binder) newExplainer() *explainer {
	return &explainer{b: b, seen: map[string]bool{}, subjects: map[string][]string{}}
}

// joinSubjects lists names as prose: "a", "a and b", "a, b and c".
func joinSubjects(names []string) string {
	if len(names) <= 1 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

func (x *explainer) finish(target string, svc *TrafficExplanation, workloads []WorkloadExplanation) Explanation {
	if workloads == nil {
		workloads = []WorkloadExplanation{}
	}
	warnings := make([]string, len(x.warnings))
	for i, w := range x.warnings {
		warnings[i] = strings.ReplaceAll(w, subjectsPlaceholder, joinSubjects(x.subjects[w]))
	}
	return Explanation{Target: target, Service: svc, Workloads: workloads, Warnings: warnings}
}

func (x *explainer) service(s subject, d Decision) *TrafficExplanation {
	x.warn(s, x.b.warnings(s, d)...)
	return &TrafficExplanation{Waypoint: refString(d.Waypoint), Reason: x.b.reason(s, d), Decision: d}
}

func (x *explainer) workload(s subject, d Decision) WorkloadExplanation {
	x.warn(s, x.b.warnings(s, d)...)
	return WorkloadExplanation{Name: s.id, Waypoint: refString(d.Waypoint), Reason: x.b.reason(s, d), Decision: d}
}

func refString(r *Ref) *string {
	if r == nil {
		return nil
	}
	s := r.String()
	return &s
}

// ExplainService explains traffic addressed to svc and to each pod its
// spec.selector selects in its namespace (none without a selector).
func (b *Binder) ExplainService(svc *corev1.Service) Explanation {
	x := b.newExplainer()
	if svc == nil {
		return x.finish("Service//", nil, nil)
	}
	s := objectSubject("Service", svc.Namespace, svc.Name, svc.Labels, false)
	st := x.service(s, b.ForService(svc))
	var workloads []WorkloadExplanation
	if len(svc.Spec.Selector) > 0 {
		sel := labels.SelectorFromSet(svc.Spec.Selector)
		for _, pod := range b.podsByNs[svc.Namespace] {
			if sel.Matches(labels.Set(pod.Labels)) {
				workloads = append(workloads, x.workload(podSubject(pod), b.ForPod(pod)))
			}
		}
	}
	return x.finish(s.id, st, workloads)
}

// ExplainServiceEntry explains traffic addressed to se's hosts, to each
// WorkloadEntry its spec.workloadSelector selects in its namespace, and to
// each inline spec.endpoints entry.
func (b *Binder) ExplainServiceEntry(se *networkingv1.ServiceEntry) Explanation {
	x := b.newExplainer()
	if se == nil {
		return x.finish("ServiceEntry//", nil, nil)
	}
	s := objectSubject("ServiceEntry", se.Namespace, se.Name, se.Labels, false)
	st := x.service(s, b.ForServiceEntry(se))
	var workloads []WorkloadExplanation
	if sel := se.Spec.GetWorkloadSelector().GetLabels(); len(sel) > 0 {
		selector := labels.SelectorFromSet(sel)
		for _, we := range b.entriesByNs[se.Namespace] {
			if selector.Matches(labels.Set(workloadEntrySelectableLabels(we))) {
				workloads = append(workloads, x.workload(workloadEntrySubject(we), b.ForWorkloadEntry(we)))
			}
		}
	}
	for _, ep := range se.Spec.GetEndpoints() {
		es := subject{
			kind:      "ServiceEntry",
			namespace: se.Namespace,
			name:      se.Name + " endpoint " + ep.GetAddress(),
			id:        "ServiceEntry/" + se.Namespace + "/" + se.Name + "/" + ep.GetAddress(),
			labels:    ep.GetLabels(),
			workload:  true,
		}
		// Inline endpoints bind like workloads, from their own labels and
		// the entry's namespace.
		workloads = append(workloads, x.workload(es, b.forWorkload(se.Namespace, ep.GetLabels())))
	}
	return x.finish(s.id, st, workloads)
}

// workloadEntrySelectableLabels are the labels a ServiceEntry
// workloadSelector matches: spec.labels over metadata.labels.
func workloadEntrySelectableLabels(we *networkingv1.WorkloadEntry) map[string]string {
	out := maps.Clone(we.Labels)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, we.Spec.GetLabels())
	return out
}

// ExplainPod explains traffic addressed to pod's IP.
func (b *Binder) ExplainPod(pod *corev1.Pod) Explanation {
	x := b.newExplainer()
	if pod == nil {
		return x.finish("Pod//", nil, nil)
	}
	s := podSubject(pod)
	return x.finish(s.id, nil, []WorkloadExplanation{x.workload(s, b.ForPod(pod))})
}

// ExplainWorkloadEntry explains traffic addressed to we's address.
func (b *Binder) ExplainWorkloadEntry(we *networkingv1.WorkloadEntry) Explanation {
	x := b.newExplainer()
	if we == nil {
		return x.finish("WorkloadEntry//", nil, nil)
	}
	s := workloadEntrySubject(we)
	return x.finish(s.id, nil, []WorkloadExplanation{x.workload(s, b.ForWorkloadEntry(we))})
}

func podSubject(p *corev1.Pod) subject {
	return objectSubject("Pod", p.Namespace, p.Name, p.Labels, true)
}

func workloadEntrySubject(we *networkingv1.WorkloadEntry) subject {
	return objectSubject("WorkloadEntry", we.Namespace, we.Name, we.Labels, true)
}
