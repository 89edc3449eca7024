package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/meshway/meshway/internal/push/wire"
)

// ztResult is what the ztunnels saw in one mode.
type ztResult struct {
	n int // ztunnels
	// first is from the control plane's start to the last ztunnel's ACK of
	// the first response of the last type; firstBytes those responses'
	// bytes, all ztunnels.
	first      time.Duration
	firstBytes int
	rssFirst   uint64 // the control plane's peak RSS once it is done
	// Per measured pod change: how many ztunnels received it (a response
	// carrying the changed pod's workload), and per ztunnel that did, the
	// time from the change to its ACK and the response's bytes.
	receivers []int
	latencies []time.Duration
	bytes     []int
	// stray counts the responses, after the first push, that carried no
	// pod change's workload: there should be none (a route change changes
	// nothing a ztunnel sees).
	stray int
	// deployed counts the responses that carried only waypoints or their
	// Services: meshd's deployment writer creates a Service per waypoint
	// and writes its Gateway's status (directory mode), after the first
	// push and possibly while the changes are made.
	deployed int
	// updates are the control plane's times per incremental ztunnel
	// translation and push (its log: "translated and pushed in");
	// fullTranslate and fullPush per full one ("full translation in",
	// "pushed in"), the first push's included.
	updates                 []time.Duration
	fullTranslate, fullPush []time.Duration
	nacks                   int
}

// ztunnelsFirstPush waits until every ztunnel has the whole of each type.
func (b *bench) ztunnelsFirstPush(ctx context.Context, r *modeResult, t *target, zf *ztFleet) error {
	r.zt.n = zf.n
	if zf.n == 0 {
		return nil
	}
	deadline := time.Now().Add(firstPushTimeout)
	for {
		last, bytes, nacks, ok := zf.firstPush()
		if ok {
			r.zt.first, r.zt.firstBytes, r.zt.nacks = last.Sub(t.start), bytes, nacks
			r.zt.rssFirst = t.p.peakRSS()
			break
		}
		if time.Now().After(deadline) {
			return t.p.failed(fmt.Errorf("the ztunnels do not all have every type after %s (streams: %w)", firstPushTimeout, zf.err()))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	fmt.Fprintf(os.Stderr, "bench: first ztunnel push: every ztunnel ACKed every type after %s\n", r.zt.first.Round(time.Millisecond))
	return zf.check()
}

// deployedWaypoints says whether a response carried only waypoints, or the
// Services of waypoints (named "waypoint" in the bench's mesh), which
// meshd deploys.
func deployedWaypoints(a ztAck) bool {
	if a.typeURL == wire.ZtunnelWaypointType {
		return true
	}
	if a.typeURL != wire.ZtunnelServiceType || len(a.names) != a.resources {
		return false
	}
	for _, n := range a.names {
		_, host, _ := strings.Cut(n, "/")
		if !strings.HasPrefix(host, "waypoint.") {
			return false
		}
	}
	return true
}

// changedUID is the workload resource a pod change changes.
func changedUID(size meshSize, c change) string {
	return "Kubernetes//Pod/" + nsName(c.ns) + "/" + changePod(size)
}

var (
	ztUpdateTimes = regexp.MustCompile(`translated and pushed in ([^)]+)\)`)
	ztFullTimes   = regexp.MustCompile(`full translation in ([^,]+), pushed in ([^)]+)\)`)
)

// ztunnelChanges attributes the ztunnels' responses since the log index
// from to the changes: a pod change's response is the first, at each
// ztunnel, of workloads carrying the changed pod's workload after the
// change began (the ztunnels' push follows the waypoints' in the
// background, possibly after the next change began).
func (b *bench) ztunnelChanges(r *modeResult, t *target, zf *ztFleet, from int) error {
	if zf.n == 0 {
		return nil
	}
	for _, line := range t.p.logLines("ztunnel resource(s) changed") {
		if m := ztUpdateTimes.FindStringSubmatch(line); m != nil {
			if d, err := time.ParseDuration(m[1]); err == nil {
				r.zt.updates = append(r.zt.updates, d)
			}
		}
		if m := ztFullTimes.FindStringSubmatch(line); m != nil {
			tr, err1 := time.ParseDuration(m[1])
			pu, err2 := time.ParseDuration(m[2])
			if err1 == nil && err2 == nil {
				r.zt.fullTranslate, r.zt.fullPush = append(r.zt.fullTranslate, tr), append(r.zt.fullPush, pu)
			}
		}
	}
	acks := zf.acks()[from:]
	used := make([]bool, len(acks))
	for _, a := range acks {
		if a.nack != "" {
			r.zt.nacks++
		}
	}
	measured := len(r.warmups)
	for k, c := range slices.Concat(r.warmups, r.changes) {
		if c.c.kind != "pod" {
			continue
		}
		uid := changedUID(b.cfg.size, c.c)
		got := map[int]bool{}
		for i, a := range acks {
			if got[a.ztunnel] || a.typeURL != wire.ZtunnelWorkloadType || a.recv.Before(c.began) || !slices.Contains(a.names, uid) {
				continue
			}
			got[a.ztunnel], used[i] = true, true
			if k >= measured {
				r.zt.latencies = append(r.zt.latencies, a.at.Sub(c.began))
				r.zt.bytes = append(r.zt.bytes, a.bytes)
			}
		}
		if k >= measured {
			r.zt.receivers = append(r.zt.receivers, len(got))
		}
	}
	for i, a := range acks {
		switch {
		case used[i] || a.resources == 0:
		case deployedWaypoints(a):
			r.zt.deployed++
		default:
			r.zt.stray++
		}
	}
	return zf.check()
}

func printZtunnelHeader(w io.Writer, cfg config) {
	if cfg.ztunnels == 0 {
		return
	}
	fmt.Fprintf(w, "- ztunnels: %d delta ADS streams in the bench process, each on its own gRPC connection, subscribed to every resource (\"*\") of the four ztunnel types; a response is decoded and its resources converted (wire.ZtunnelState.Apply) before its ACK is sent, not assembled (ztunnel 0's whole configuration is assembled and validated after the first push and at the end)\n", cfg.ztunnels)
}

// printZtunnelRows adds the ztunnels' rows to the table.
func printZtunnelRows(w io.Writer, cfg config, rs []*modeResult, row func(string, func(*modeResult) string, string, string), judge func(func(*modeResult) (bool, string)) string) {
	if cfg.ztunnels == 0 {
		return
	}
	n := cfg.ztunnels
	row(fmt.Sprintf("ztunnels (%d): time to first full push: start → every ztunnel ACKed every type", n), func(r *modeResult) string {
		return secs(r.zt.first)
	}, "—", "—")
	row("ztunnels: bytes of the first push, per ztunnel (all four types); control plane peak RSS once it is done", func(r *modeResult) string {
		return fmt.Sprintf("%s; %s", kib(r.zt.firstBytes/max(1, r.zt.n)), mib(r.zt.rssFirst))
	}, "—", "—")
	row("ztunnels: control plane time per incremental ztunnel translation and push (the changed namespace), p50 / max", func(r *modeResult) string {
		return fmt.Sprintf("%s / %s ms (%d)", ms(pct(r.zt.updates, 50)), ms(pct(r.zt.updates, 100)), len(r.zt.updates))
	}, "—", "—")
	row("ztunnels: full translations (the first push's included): how many; translate / push, max", func(r *modeResult) string {
		return fmt.Sprintf("%d; %s / %s ms", len(r.zt.fullTranslate), ms(pct(r.zt.fullTranslate, 100)), ms(pct(r.zt.fullPush, 100)))
	}, "—", "—")
	row("ztunnels that received a pod label change, min / max", func(r *modeResult) string {
		return fmt.Sprintf("%d / %d of %d", pct(r.zt.receivers, 0), pct(r.zt.receivers, 100), r.zt.n)
	}, fmt.Sprintf("all %d", n), judge(func(r *modeResult) (bool, string) {
		short := 0
		for _, k := range r.zt.receivers {
			if k != r.zt.n {
				short++
			}
		}
		return short == 0, fmt.Sprintf("%d of %d pod changes missed a ztunnel", short, len(r.zt.receivers))
	}))
	row("ztunnel responses that carried no pod change (route changes change nothing ztunnels see; those of the waypoints meshd deploys, directory mode, apart)", func(r *modeResult) string {
		if r.zt.deployed > 0 {
			return fmt.Sprintf("%d (and %d of deployed waypoints)", r.zt.stray, r.zt.deployed)
		}
		return fmt.Sprint(r.zt.stray)
	}, "0", judge(func(r *modeResult) (bool, string) { return r.zt.stray == 0, fmt.Sprint(r.zt.stray) }))
	row("bytes per ztunnel per pod label change, p50 / max", func(r *modeResult) string {
		return fmt.Sprintf("%s / %s", kib(pct(r.zt.bytes, 50)), kib(pct(r.zt.bytes, 100)))
	}, "—", "—")
	row("pod label change → ztunnel ACK, p50 / p99 / max (changes × ztunnels)", func(r *modeResult) string {
		l := r.zt.latencies
		return fmt.Sprintf("%s / %s / %s ms", ms(pct(l, 50)), ms(pct(l, 99)), ms(pct(l, 100)))
	}, "—", "—")
	row("ztunnel NACKs", func(r *modeResult) string { return fmt.Sprint(r.zt.nacks) }, "0", judge(func(r *modeResult) (bool, string) {
		return r.zt.nacks == 0, fmt.Sprint(r.zt.nacks)
	}))
}
