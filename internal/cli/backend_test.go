package cli

import (
	"strings"
	"testing"

	"github.com/meshway/meshway/internal/kube"
)

func TestChooseBackend(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		store, kcfg, context string
		env                  map[string]string
		inCluster            bool
		wantDir              string
		wantCluster          *kube.Target
		wantErr              string
	}{
		{name: "--store wins over everything", store: "/s", env: map[string]string{EnvStore: "/e", EnvKubeconfig: "/k"}, inCluster: true, wantDir: "/s"},
		{name: "--kubeconfig wins over the environment", kcfg: "/k1", env: map[string]string{EnvStore: "/e"}, wantCluster: &kube.Target{Kubeconfig: "/k1"}},
		{name: "--context alone selects a cluster", context: "dev", wantCluster: &kube.Target{Context: "dev"}},
		{name: "MESHWAY_STORE over KUBECONFIG", env: map[string]string{EnvStore: "/e", EnvKubeconfig: "/k"}, wantDir: "/e"},
		{name: "KUBECONFIG", env: map[string]string{EnvKubeconfig: "/k"}, inCluster: true, wantCluster: &kube.Target{}},
		{name: "in a pod", inCluster: true, wantCluster: &kube.Target{InCluster: true}},
		{name: "default embedded store", wantDir: "/.meshway/store"},
		{name: "both explicitly", store: "/s", kcfg: "/k", wantErr: "give one of them"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &app{storeDir: tc.store, kubeconfig: tc.kcfg, kubeCtx: tc.context, env: Env{
				Getenv:    func(k string) string { return tc.env[k] },
				InCluster: func() bool { return tc.inCluster },
			}}
			b, err := a.chooseBackend()
			switch {
			case tc.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			case tc.wantCluster != nil:
				if b.dir != "" || b.cluster != *tc.wantCluster {
					t.Errorf("got dir %q cluster %+v, want cluster %+v", b.dir, b.cluster, *tc.wantCluster)
				}
			default:
				if !strings.HasSuffix(b.dir, tc.wantDir) {
					t.Errorf("got dir %q cluster %+v, want dir %q", b.dir, b.cluster, tc.wantDir)
				}
			}
		})
	}
}
