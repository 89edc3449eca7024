package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/meshway/meshway/internal/manifest"
	"github.com/meshway/meshway/internal/model"
	"github.com/meshway/meshway/internal/translate"
)

// allNodes is the --ztunnel value that prints every node's ztunnel.
const allNodes = "all"

func newTranslateCmd(a *app) *cobra.Command {
	var f fileOptions
	var only, node string
	cmd := &cobra.Command{
		Use:   "translate -f FILE|DIR",
		Short: "Print the configuration each waypoint (or ztunnel) would run for a set of manifests, offline",
		Long: `translate reads manifests as apply does, without any config store, and prints
the configuration of every ready waypoint (a Gateway with status.addresses) with the
same code the control plane runs: the services it captures, their routes, clusters,
endpoints, policies and telemetry. Each waypoint is one YAML document (separated by
---) that "waypoint -config FILE" loads as it is. What cannot be honoured (a route on
a TCP port, a policy without targetRefs, an unsupported field) is reported on stderr.

With --ztunnel NODE it prints the configuration of the ztunnel of that node (a Pod's
spec.nodeName) instead, or of every node with --ztunnel all: the mesh's workloads
(those on the node are the ones it captures), services, waypoints and L4
authorization policies.`,
		Example: `  meshctl translate -f examples/bookinfo/ --waypoint default/waypoint > waypoint.yaml
  waypoint -config waypoint.yaml
  meshctl translate -f manifests/ --ztunnel node-1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flags().Changed("ztunnel") {
				if only != "" {
					return fmt.Errorf("--waypoint and --ztunnel print different proxies; give one of them")
				}
				return a.runTranslateZtunnel(cmd.OutOrStdout(), cmd.ErrOrStderr(), &f, node)
			}
			return a.runTranslate(cmd.OutOrStdout(), cmd.ErrOrStderr(), &f, only)
		},
	}
	f.register(cmd, "translate")
	cmd.Flags().StringVar(&only, "waypoint", "", "print only the waypoint NAMESPACE/NAME")
	cmd.Flags().StringVar(&node, "ztunnel", "", "print the ztunnel configuration of node NODE instead of waypoints (\"all\": every node)")
	return cmd
}

// runTranslateZtunnel prints the ztunnel configuration of node, or of
// every node when node is "all".
func (a *app) runTranslateZtunnel(out, errOut io.Writer, f *fileOptions, node string) error {
	if node == "" {
		return fmt.Errorf("--ztunnel: give a node name (a Pod's spec.nodeName), or %q for every node", allNodes)
	}
	in, err := a.translateInputs(f)
	if err != nil {
		return err
	}
	zs, warnings := translate.ZtunnelConfigs(in)
	var selected []*model.Ztunnel
	for _, z := range zs {
		if node == allNodes || z.Node == node {
			selected = append(selected, z)
		}
	}
	if node != allNodes && len(selected) == 0 {
		return fmt.Errorf("no node %s in the manifests: a node is the spec.nodeName of a Pod", node)
	}
	for i, z := range selected {
		y, err := sigsyaml.Marshal(z)
		if err != nil {
			return err
		}
		if i > 0 {
			fmt.Fprintln(out, "---")
		}
		if _, err := out.Write(y); err != nil {
			return err
		}
	}
	if len(selected) == 0 {
		fmt.Fprintln(errOut, "No ztunnels: none of the Pods in the manifests has spec.nodeName.")
	}
	for _, w := range warnings {
		fmt.Fprintf(errOut, "Warning: %s\n", w)
	}
	return nil
}

func (a *app) runTranslate(out, errOut io.Writer, f *fileOptions, only string) error {
	var want *translate.Ref
	if only != "" {
		ns, name, ok := strings.Cut(only, "/")
		if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
			return fmt.Errorf("--waypoint %q: write NAMESPACE/NAME, e.g. default/waypoint", only)
		}
		want = &translate.Ref{Namespace: ns, Name: name}
	}
	in, err := a.translateInputs(f)
	if err != nil {
		return err
	}
	wps, warnings := translate.WaypointConfigs(in)
	var selected []*model.Waypoint
	for _, w := range wps {
		if want == nil || w.Namespace == want.Namespace && w.Name == want.Name {
			selected = append(selected, w)
		}
	}
	if want != nil && len(selected) == 0 {
		return fmt.Errorf("no waypoint %s in the manifests: a waypoint is a Gateway with status.addresses (meshd writes them once its pods are ready)", want)
	}
	for i, w := range selected {
		y, err := sigsyaml.Marshal(w)
		if err != nil {
			return err
		}
		if i > 0 {
			fmt.Fprintln(out, "---")
		}
		if _, err := out.Write(y); err != nil {
			return err
		}
	}
	if len(selected) == 0 {
		fmt.Fprintln(errOut, "No waypoints: none of the Gateways in the manifests has status.addresses (meshd writes them once its pods are ready).")
	}
	for _, w := range warnings {
		fmt.Fprintf(errOut, "Warning: %s\n", w)
	}
	return nil
}

// translateInputs reads the manifests of -f like apply, defaulting
// namespaces to -n.
func (a *app) translateInputs(f *fileOptions) (translate.ConfigInputs, error) {
	var in translate.ConfigInputs
	if len(f.files) == 0 {
		return in, fmt.Errorf("must specify one of -f or --filename")
	}
	n := 0
	for _, p := range f.files {
		sources, err := readManifestSources(p, a.env.Stdin, f.recursive)
		if err != nil {
			return in, err
		}
		for _, src := range sources {
			docs, err := manifest.Decode(src.name, bytes.NewReader(src.data))
			if err != nil {
				return in, err
			}
			for _, d := range docs {
				k := manifest.MustKindOf(d.Object)
				if k.Namespaced {
					switch ns := d.Object.GetNamespace(); {
					case ns == "":
						d.Object.SetNamespace(a.ns())
					case a.nsSet && ns != a.namespace:
						return in, &manifest.Error{Source: d.Source, Document: d.Index, Line: d.Line, Object: k.Kind + " " + d.Object.GetName(), Field: "metadata.namespace",
							Err: fmt.Errorf("the namespace from the provided object %q does not match the namespace %q; pass --namespace=%s or remove one of them", ns, a.namespace, ns)}
					}
				}
				// What a store would hold: defaulted, and refused when invalid.
				obj, err := manifest.Admit(context.Background(), manifest.Create, "", d.Object, nil)
				if err != nil {
					return in, refused(d, err)
				}
				in.Add(obj)
				n++
			}
		}
	}
	if n == 0 {
		return in, fmt.Errorf("no objects passed to translate")
	}
	return in, nil
}

type manifestSource struct {
	name string
	data []byte
}

// readManifestSources reads path as apply does: "-" is stdin, a directory
// contributes its manifest files in name order (recursively with -R), a
// file is read whatever its extension.
func readManifestSources(path string, stdin io.Reader, recursive bool) ([]manifestSource, error) {
	if path == "-" {
		data, err := io.ReadAll(stdin)
		if err != nil {
			return nil, &manifest.Error{Source: "<stdin>", Err: fmt.Errorf("reading: %w", err)}
		}
		return []manifestSource{{"<stdin>", data}}, nil
	}
	info, err := os.Stat(path)
	if err != nil {
		return nil, &manifest.Error{Source: path, Err: fmt.Errorf("cannot read: %w; check the path given to -f", err)}
	}
	files := []string{path}
	if info.IsDir() {
		files = nil
		err := filepath.WalkDir(path, func(p string, d os.DirEntry, err error) error {
			switch {
			case err != nil:
				return err
			case d.IsDir() && p != path && !recursive:
				return filepath.SkipDir
			case !d.IsDir() && isManifestFile(p):
				files = append(files, p)
			}
			return nil
		})
		if err != nil {
			return nil, &manifest.Error{Source: path, Err: fmt.Errorf("cannot list directory: %w", err)}
		}
		sort.Strings(files)
		if len(files) == 0 {
			return nil, &manifest.Error{Source: path, Err: fmt.Errorf("directory has no %s files", strings.Join(manifest.Extensions, ", "))}
		}
	}
	var out []manifestSource
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, &manifest.Error{Source: file, Err: fmt.Errorf("cannot read: %w", err)}
		}
		out = append(out, manifestSource{file, data})
	}
	return out, nil
}

func isManifestFile(p string) bool {
	ext := strings.ToLower(filepath.Ext(p))
	for _, e := range manifest.Extensions {
		if ext == e {
			return true
		}
	}
	return false
}
