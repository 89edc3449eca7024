// Package cli implements meshctl: the istioctl-compatible waypoint commands,
// kubectl-style verbs (apply, get, label, delete) on the config store, and
// `waypoint explain`, which says which waypoint carries traffic to an object and why.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/meshway/meshway/internal/kube"
	"github.com/meshway/meshway/internal/store"
)

// Environment variables that select the config store.
const (
	// EnvStore names a store directory (the embedded backend).
	EnvStore = "MESHWAY_STORE"
	// EnvKubeconfig names kubeconfig files (the Kubernetes backend), as for kubectl.
	EnvKubeconfig = "KUBECONFIG"
)

// Namespaces every new embedded store starts with: the one an API server creates,
// and the mesh's root namespace, where mesh-wide policies live.
var initialNamespaces = []string{"default", "istio-system"}

// Env is everything meshctl takes from its surroundings, so tests can run it
// in-process with a fixed clock and captured output.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// Now is the wall clock used for ages and for stamping objects; nil means time.Now.
	Now func() time.Time
	// OpenStore opens the store for a --store directory; nil means store.OpenDir.
	OpenStore func(dir string, opts store.Options) (store.Store, error)
	// InCluster reports whether meshctl runs in a Kubernetes pod; nil means it
	// checks for the service account token.
	InCluster func() bool
	// PollInterval is how often --wait polls; zero means one second, as istioctl.
	PollInterval time.Duration
}

// OSEnv is the environment of a real process.
func OSEnv() Env {
	return Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
}

func (e Env) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

func (e Env) pollInterval() time.Duration {
	if e.PollInterval > 0 {
		return e.PollInterval
	}
	return time.Second
}

// app is the state shared by every command of one invocation.
type app struct {
	env        Env
	storeDir   string
	kubeconfig string
	kubeCtx    string
	namespace  string
	nsSet      bool // -n was given explicitly
	opened     store.Store
}

// Run executes meshctl with args and returns the process exit code.
func Run(ctx context.Context, args []string, env Env) int {
	root := newRoot(env)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		printError(env.Stderr, err)
		return 1
	}
	return 0
}

// printError prints a command's final error: API errors as kubectl prints them
// ("Error from server (NotFound): …"), anything else after "Error: ". An error
// wrapped in context is printed as it is, with its context.
func printError(w io.Writer, err error) {
	var api *apiError
	// Wrapped errors carry context and print as such, so this is no errors.As.
	_, unwrapped := err.(apierrors.APIStatus)
	switch {
	case errors.As(err, new(*exitError)):
	case errors.As(err, &api) && api == err: //nolint:errorlint // see above
		fmt.Fprintln(w, err)
	case unwrapped && missingResourceType(err):
		fmt.Fprintf(w, "Error: %v\n", serverError(err))
	case unwrapped && apierrors.ReasonForError(err) != "":
		fmt.Fprintln(w, serverError(err))
	default:
		fmt.Fprintf(w, "Error: %v\n", err)
	}
}

// exitError makes a command exit non-zero after it has printed its own message.
type exitError struct{}

func (*exitError) Error() string { return "command failed" }

func newRoot(env Env) *cobra.Command {
	a := &app{env: env}
	root := &cobra.Command{
		Use:   "meshctl",
		Short: "Manage meshway waypoints, and the manifests they are configured by",
		Long: `meshctl manages meshway, an ambient service mesh that reads the same manifests as Istio.

It keeps objects in a config store: by default a directory of manifests
(--store DIR, or $` + EnvStore + `, or ~/.meshway/store), one file per object; or a
Kubernetes cluster (--kubeconfig FILE, --context NAME, $` + EnvKubeconfig + `, or the pod's
service account). Flags win over environment variables; see meshctl version.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(cmd *cobra.Command, _ []string) {
			a.nsSet = cmd.Flags().Changed("namespace")
		},
	}
	root.SetIn(env.Stdin)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	root.PersistentFlags().StringVar(&a.storeDir, "store", "", "directory of the embedded config store (default $"+EnvStore+", else ~/.meshway/store)")
	root.PersistentFlags().StringVar(&a.kubeconfig, "kubeconfig", "", "kubeconfig of a Kubernetes cluster to use instead of the embedded store")
	root.PersistentFlags().StringVar(&a.kubeCtx, "context", "", "kubeconfig context to use (selects the Kubernetes backend)")
	root.PersistentFlags().StringVarP(&a.namespace, "namespace", "n", "", "namespace (default \"default\")")
	root.AddCommand(
		newWaypointCmd(a),
		newApplyCmd(a),
		newGetCmd(a),
		newLabelCmd(a),
		newDeleteCmd(a),
		newVersionCmd(a),
		newTranslateCmd(a),
		newProxyStatusCmd(a),
	)
	return root
}

// ns is the namespace a command works in: -n, else "default".
func (a *app) ns() string {
	if a.namespace == "" {
		return "default"
	}
	return a.namespace
}

// backend is where a command's objects live.
type backend struct {
	dir     string      // the embedded store's directory, when set
	cluster kube.Target // otherwise, the cluster
}

// chooseBackend applies meshctl's one precedence, explicit flags first:
//  1. --store DIR                      → embedded store in DIR
//  2. --kubeconfig FILE / --context C  → that cluster
//  3. $MESHWAY_STORE                   → embedded store there
//  4. $KUBECONFIG                      → that cluster (current context)
//  5. running in a pod                 → this cluster, with the pod's service account
//  6. otherwise                        → embedded store in ~/.meshway/store
//
// ~/.kube/config alone never selects a cluster: the embedded store is the
// default, and meshctl does not write to a cluster nobody pointed it at.
func (a *app) chooseBackend() (backend, error) {
	getenv := a.env.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	clusterFlags := a.kubeconfig != "" || a.kubeCtx != ""
	switch {
	case a.storeDir != "" && clusterFlags:
		return backend{}, fmt.Errorf("--store selects the embedded store and --kubeconfig/--context a cluster; give one of them")
	case a.storeDir != "":
		return backend{dir: a.storeDir}, nil
	case clusterFlags:
		return backend{cluster: kube.Target{Kubeconfig: a.kubeconfig, Context: a.kubeCtx}}, nil
	case getenv(EnvStore) != "":
		return backend{dir: getenv(EnvStore)}, nil
	case getenv(EnvKubeconfig) != "":
		return backend{cluster: kube.Target{}}, nil // clientcmd reads $KUBECONFIG
	case a.inCluster():
		return backend{cluster: kube.Target{InCluster: true}}, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return backend{}, fmt.Errorf("no --store given, $%s unset, and no home directory: %w", EnvStore, err)
	}
	return backend{dir: filepath.Join(home, ".meshway", "store")}, nil
}

func (a *app) inCluster() bool {
	if a.env.InCluster != nil {
		return a.env.InCluster()
	}
	if os.Getenv("KUBERNETES_SERVICE_HOST") == "" {
		return false
	}
	_, err := os.Stat("/var/run/secrets/kubernetes.io/serviceaccount/token")
	return err == nil
}

func (a *app) store() (store.Store, error) {
	if a.opened != nil {
		return a.opened, nil
	}
	b, err := a.chooseBackend()
	if err != nil {
		return nil, err
	}
	if b.dir == "" {
		cfg, describe, err := kube.Connect(b.cluster)
		if err != nil {
			return nil, err
		}
		s, err := kube.New(cfg, describe)
		if err != nil {
			return nil, err
		}
		a.opened = s
		return s, nil
	}
	opts := store.Options{
		Now:               a.env.now,
		InitialNamespaces: initialNamespaces,
		Warn:              func(err error) { fmt.Fprintf(a.env.Stderr, "Warning: %v\n", err) },
	}
	open := a.env.OpenStore
	if open == nil {
		open = func(dir string, opts store.Options) (store.Store, error) { return store.OpenDir(dir, opts) }
	}
	s, err := open(b.dir, opts)
	if err != nil {
		return nil, fmt.Errorf("opening the config store: %w", err)
	}
	a.opened = s
	return s, nil
}

func newVersionCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print meshctl's version and which config store it uses",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.store()
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "meshctl version: %s\nconfig store: %s\n", Version, s.Describe())
			return nil
		},
	}
}

// Version is set at build time with -ldflags "-X .../internal/cli.Version=…".
var Version = "dev"
