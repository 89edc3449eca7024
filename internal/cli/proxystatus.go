package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshway/meshway/internal/push"
	pushclient "github.com/meshway/meshway/internal/push/client"
	"github.com/meshway/meshway/internal/push/wire"
)

// EnvMeshd is where proxy-status finds meshd's monitoring address.
const EnvMeshd = "MESHWAY_MESHD"

func newProxyStatusCmd(a *app) *cobra.Command {
	var addr, output string
	cmd := &cobra.Command{
		Use:   "proxy-status",
		Short: "List the proxies connected to meshd and whether each has its current configuration",
		Long: `proxy-status asks meshd (its monitoring address, /debug/syncz) which proxies are
connected and, for each, the configuration it subscribes to and its sync state, in
istioctl's words: SYNCED (the proxy ACKed the current version), STALE (sent or being
sent, not yet ACKed), NACKED (the proxy rejected it and keeps serving the version it
had; the reason follows the tables) and NOT SENT (meshd has no configuration for it:
is its Gateway programmed?).

Waypoints are listed one row per configuration. Ztunnels, which hold every workload,
service, waypoint and L4 policy of the mesh, follow in a table of their own: one row
per ztunnel with its node and the state of each resource type (SYNCED: it holds every
resource of the type as meshd has it; NACKED: it rejected some and has not accepted
them since).`,
		Example: `  meshctl proxy-status
  meshctl proxy-status --meshd-address 127.0.0.1:15014 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if addr == "" {
				addr = a.getenv(EnvMeshd)
			}
			if addr == "" {
				addr = "127.0.0.1:15014"
			}
			return runProxyStatus(cmd.Context(), cmd.OutOrStdout(), addr, output, a.env.now())
		},
	}
	cmd.Flags().StringVar(&addr, "meshd-address", "", "meshd's monitoring address (default $"+EnvMeshd+", else 127.0.0.1:15014)")
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json, or empty for a table")
	return cmd
}

func (a *app) getenv(k string) string {
	if a.env.Getenv == nil {
		return ""
	}
	return a.env.Getenv(k)
}

func runProxyStatus(ctx context.Context, out io.Writer, addr, output string, now time.Time) error {
	if output != "" && output != "json" {
		return fmt.Errorf("-o %q: want json, or no -o for a table", output)
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	url := "http://" + addr + "/debug/syncz"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("--meshd-address %q: %w", addr, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach meshd at %s (is it running? set --meshd-address or $%s): %w", addr, EnvMeshd, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("reading %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	var proxies []push.ProxyStatus
	if err := json.Unmarshal(body, &proxies); err != nil {
		return fmt.Errorf("%s: not a proxy list (is %s meshd's monitoring address?): %w", url, addr, err)
	}
	if output == "json" {
		_, err := out.Write(body)
		return err
	}
	return printProxyStatus(out, proxies, now)
}

// printProxyStatus prints the waypoints, one row per proxy and subscribed
// resource; then the ztunnels, one row per ztunnel with a column per
// resource type (they hold every resource of each, so their state is per
// type, as istioctl lists ztunnels by subscribed type); then the reason of
// every NACK.
func printProxyStatus(out io.Writer, proxies []push.ProxyStatus, now time.Time) error {
	if len(proxies) == 0 {
		_, err := fmt.Fprintln(out, "No proxies are connected to meshd.")
		return err
	}
	var waypoints, ztunnels []push.ProxyStatus
	for _, p := range proxies {
		if p.Proxy.Kind == pushclient.KindZtunnel || len(p.Types) > 0 {
			ztunnels = append(ztunnels, p)
		} else {
			waypoints = append(waypoints, p)
		}
	}
	var nacks []string
	if len(waypoints) > 0 {
		tw := kubectlTabWriter(out)
		fmt.Fprintln(tw, "NAME\tKIND\tCONFIG\tSTATUS\tVERSION\tCONNECTED")
		for _, p := range waypoints {
			if len(p.Resources) == 0 {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.Proxy, p.Proxy.Kind, none, push.NotSent, none, age(now, p.Connected))
			}
			for _, r := range p.Resources {
				version := orNone(push.ShortVersion(r.Acked))
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.Proxy, p.Proxy.Kind, r.Name, r.State, version, age(now, p.Connected))
				if r.State == push.Nacked {
					nacks = append(nacks, fmt.Sprintf("%s rejected %s version %s: %s", p.Proxy, r.Name, push.ShortVersion(r.Nacked), r.Error))
				}
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(ztunnels) > 0 {
		if len(waypoints) > 0 {
			fmt.Fprintln(out)
		}
		n, err := printZtunnelStatus(out, ztunnels, now)
		if err != nil {
			return err
		}
		nacks = append(nacks, n...)
	}
	for _, n := range nacks {
		if _, err := fmt.Fprintln(out, n); err != nil {
			return err
		}
	}
	return nil
}

// ztunnelColumn is a type column of the ztunnel table.
type ztunnelColumn struct{ typeURL, header string }

// ztunnelColumns are the ztunnel table's type columns, in order; a type
// not listed gets a column after them, named by its message.
var ztunnelColumns = []ztunnelColumn{
	{wire.ZtunnelWorkloadType, "WORKLOADS"},
	{wire.ZtunnelServiceType, "SERVICES"},
	{wire.ZtunnelWaypointType, "WAYPOINTS"},
	{wire.ZtunnelPolicyType, "POLICIES"},
}

// printZtunnelStatus prints the ztunnel table: name, node, the state of
// each type ("-" where the ztunnel does not subscribe to it) and the
// connection's age. It returns the NACK lines.
func printZtunnelStatus(out io.Writer, ztunnels []push.ProxyStatus, now time.Time) ([]string, error) {
	cols := slices.Clone(ztunnelColumns)
	for _, p := range ztunnels {
		for _, ts := range p.Types {
			if !slices.ContainsFunc(cols, func(c ztunnelColumn) bool { return c.typeURL == ts.Type }) {
				cols = append(cols, ztunnelColumn{ts.Type, strings.ToUpper(shortType(ts.Type))})
			}
		}
	}
	tw := kubectlTabWriter(out)
	headers := []string{"ZTUNNEL", "NODE"}
	for _, c := range cols {
		headers = append(headers, c.header)
	}
	fmt.Fprintln(tw, strings.Join(append(headers, "CONNECTED"), "\t"))
	var nacks []string
	for _, p := range ztunnels {
		row := []string{p.Proxy.String(), orNone(p.Proxy.Node)}
		for _, c := range cols {
			state := "-"
			for _, ts := range p.Types {
				if ts.Type != c.typeURL {
					continue
				}
				state = ts.State
				if ts.State == push.Nacked {
					nacks = append(nacks, fmt.Sprintf("%s rejected %s version %s: %s", p.Proxy, shortType(ts.Type), ts.Nacked, ts.Error))
				}
			}
			row = append(row, state)
		}
		fmt.Fprintln(tw, strings.Join(append(row, age(now, p.Connected)), "\t"))
	}
	return nacks, tw.Flush()
}

// shortType is the message name of a type URL.
func shortType(typeURL string) string {
	return typeURL[strings.LastIndexByte(typeURL, '.')+1:]
}
