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

	"github.com/meshway/meshway/internal/store"
)

// EnvStore names the environment variable that selects the store directory.
const EnvStore = "MESHWAY_STORE"

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
	env       Env
	storeDir  string
	namespace string
	nsSet     bool // -n was given explicitly
	opened    store.Store
}

// Run executes meshctl with args and returns the process exit code.
func Run(ctx context.Context, args []string, env Env) int {
	root := newRoot(env)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		var api *apiError
		switch {
		case errors.As(err, new(*exitError)):
		case errors.As(err, &api) && api == err: //nolint:errorlint // only an unwrapped API error reads as kubectl's
			fmt.Fprintln(env.Stderr, err)
		default:
			fmt.Fprintf(env.Stderr, "Error: %v\n", err)
		}
		return 1
	}
	return 0
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
(--store DIR, or $` + EnvStore + `, or ~/.meshway/store), one file per object.`,
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
	root.PersistentFlags().StringVarP(&a.namespace, "namespace", "n", "", "namespace (default \"default\")")
	root.AddCommand(
		newWaypointCmd(a),
		newApplyCmd(a),
		newGetCmd(a),
		newLabelCmd(a),
		newDeleteCmd(a),
		newVersionCmd(a),
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

// storePath resolves the store directory: --store, then $MESHWAY_STORE, then ~/.meshway/store.
func (a *app) storePath() (string, error) {
	if a.storeDir != "" {
		return a.storeDir, nil
	}
	if a.env.Getenv != nil {
		if d := a.env.Getenv(EnvStore); d != "" {
			return d, nil
		}
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no --store given, $%s unset, and no home directory: %w", EnvStore, err)
	}
	return filepath.Join(home, ".meshway", "store"), nil
}

func (a *app) store() (store.Store, error) {
	if a.opened != nil {
		return a.opened, nil
	}
	dir, err := a.storePath()
	if err != nil {
		return nil, err
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
	s, err := open(dir, opts)
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
