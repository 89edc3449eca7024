package translate

import (
	"bytes"
	"fmt"
	"strings"

	sigsyaml "sigs.k8s.io/yaml"

	ratelimitv1alpha1 "github.com/meshway/meshway/api/ratelimit/v1alpha1"
)

// SplitLocalRateLimitPolicies takes the LocalRateLimitPolicy documents out of
// a YAML stream read from source, for readers whose decoder does not know
// the kind (internal/manifest does not register it yet). It returns the
// stream with each such document's lines turned into comments, so that the
// line numbers and document indices of the others stay as written, and the
// policies, decoded strictly. JSON streams are returned unchanged.
func SplitLocalRateLimitPolicies(source string, data []byte) ([]byte, []*ratelimitv1alpha1.LocalRateLimitPolicy, error) {
	if t := bytes.TrimLeft(data, " \t\r\n"); bytes.HasPrefix(t, []byte("{")) || bytes.HasPrefix(t, []byte("[")) {
		return data, nil, nil
	}
	lines := strings.SplitAfter(string(data), "\n")
	var out strings.Builder
	var policies []*ratelimitv1alpha1.LocalRateLimitPolicy
	start, index := 0, 1
	flush := func(end int) error {
		doc := strings.Join(lines[start:end], "")
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		// Malformed documents are left to the caller's decoder to report.
		if sigsyaml.Unmarshal([]byte(doc), &head) == nil &&
			head.APIVersion == ratelimitv1alpha1.SchemeGroupVersion.String() && head.Kind == ratelimitv1alpha1.Kind {
			p := &ratelimitv1alpha1.LocalRateLimitPolicy{}
			if err := sigsyaml.UnmarshalStrict([]byte(doc), p); err != nil {
				return fmt.Errorf("%s:%d: document %d (%s %s): %w", source, start+1, index, head.Kind, p.Name, err)
			}
			policies = append(policies, p)
			for _, l := range lines[start:end] {
				out.WriteString("#")
				if !strings.HasSuffix(l, "\n") {
					continue
				}
				out.WriteString("\n")
			}
			return nil
		}
		out.WriteString(doc)
		return nil
	}
	for i, l := range lines {
		if isYAMLSeparator(strings.TrimRight(l, "\r\n")) {
			if err := flush(i); err != nil {
				return nil, nil, err
			}
			out.WriteString(l)
			start, index = i+1, index+1
		}
	}
	if err := flush(len(lines)); err != nil {
		return nil, nil, err
	}
	return []byte(out.String()), policies, nil
}

// isYAMLSeparator is internal/manifest's document separator: "---", alone or
// followed by a comment.
func isYAMLSeparator(line string) bool {
	rest, ok := strings.CutPrefix(line, "---")
	if !ok {
		return false
	}
	rest = strings.TrimSpace(rest)
	return rest == "" || strings.HasPrefix(rest, "#")
}
