package main

import (
	"fmt"
	"io"
	"time"

	"github.com/meshway/meshway/bench/internal/benchfmt"
)

// Targets from the issue.
const (
	targetThroughputRatio = 0.60
	targetSetupP99        = 100 * time.Microsecond
	targetIdleStream      = 32 << 10
)

// setupBatch streams are open at once while timing warm set-ups: fewer than
// a connection's stream cap, so every set-up finds the warm connection.
const setupBatch = 100

type latency struct{ p50, p99 time.Duration }

// warmSplit separates the first set-up after each batch close from the rest.
type warmSplit struct{ first, restP99 time.Duration }

type memCost struct{ client, server float64 } // bytes

func (m memCost) total() float64 { return m.client + m.server }

type results struct {
	single, multi [3]float64 // bytes/s: TCP, TLS, HBONE
	warmSetup     latency    // HBONE stream on a warm connection
	warmSplit     warmSplit
	newConn       [3]latency
	idleStream    memCost // HBONE
	idleConn      [3]memCost
	streams       int
}

func (r *results) measure(cfg config, cl *clients, child *childProc) error {
	r.streams = 32
	for i, k := range cl.kinds() {
		var err error
		if r.single[i], err = throughput(k.dial, 1, cfg.duration); err != nil {
			return fmt.Errorf("%s single stream: %w", k.name, err)
		}
		if r.multi[i], err = throughput(k.dial, r.streams, cfg.duration); err != nil {
			return fmt.Errorf("%s %d streams: %w", k.name, r.streams, err)
		}
	}
	var err error
	if r.warmSetup.p50, r.warmSetup.p99, r.warmSplit.first, r.warmSplit.restP99, err = latencies(cl.dialHBONE, cfg.setups, setupBatch); err != nil {
		return fmt.Errorf("HBONE warm set-up: %w", err)
	}
	for i, dial := range []dialFunc{cl.dialTCP, cl.dialTLS, cl.dialHBONENew} {
		if r.newConn[i].p50, r.newConn[i].p99, _, _, err = latencies(dial, cfg.handshakes, 1); err != nil {
			return fmt.Errorf("new connections: %w", err)
		}
	}
	if r.idleStream.client, r.idleStream.server, err = idleCost(child, cl.dialHBONE, cfg.idleStreams); err != nil {
		return fmt.Errorf("idle streams: %w", err)
	}
	for i, dial := range []dialFunc{cl.dialTCP, cl.dialTLS} {
		if r.idleConn[i].client, r.idleConn[i].server, err = idleCost(child, dial, cfg.idleConns); err != nil {
			return fmt.Errorf("idle connections: %w", err)
		}
	}
	if r.idleConn[2].client, r.idleConn[2].server, err = idleConnCost(child, cl, cfg.idleConns); err != nil {
		return fmt.Errorf("idle HBONE connections: %w", err)
	}
	return nil
}

func mibps(b float64) string { return fmt.Sprintf("%.0f MiB/s", b/(1<<20)) }

func us(d time.Duration) string { return fmt.Sprintf("%.0f", float64(d)/float64(time.Microsecond)) }

func lat(l latency) string { return us(l.p50) + " / " + us(l.p99) + " µs" }

func kib(m memCost) string {
	return fmt.Sprintf("%.1f KiB client + %.1f KiB server (%.1f KiB both ends)", m.client/1024, m.server/1024, m.total()/1024)
}

func (r *results) print(w io.Writer) {
	ratio := r.single[2] / r.single[0]
	fmt.Fprintln(w, "| measurement | raw TCP | TLS 1.3 | HBONE | target | result |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	fmt.Fprintf(w, "| single-stream throughput | %s | %s | %s | HBONE ≥ %.0f%% of raw TCP | %s (%.0f%%) |\n",
		mibps(r.single[0]), mibps(r.single[1]), mibps(r.single[2]), targetThroughputRatio*100, benchfmt.Verdict(ratio >= targetThroughputRatio), ratio*100)
	fmt.Fprintf(w, "| single-stream throughput relative to TLS 1.3 | — | 100%% | %.0f%% | — | — |\n", r.single[2]/r.single[1]*100)
	fmt.Fprintf(w, "| %d-stream aggregate throughput | %s | %s | %s | — | HBONE %.0f%% of TCP |\n",
		r.streams, mibps(r.multi[0]), mibps(r.multi[1]), mibps(r.multi[2]), r.multi[2]/r.multi[0]*100)
	fmt.Fprintf(w, "| stream set-up on a warm connection, p50 / p99 | — | — | %s | p99 ≤ %s µs | %s |\n",
		lat(r.warmSetup), us(targetSetupP99), benchfmt.Verdict(r.warmSetup.p99 <= targetSetupP99))
	fmt.Fprintf(w, "| warm set-up: first after each batch close (median) / p99 of the others | — | — | %s / %s µs | — | the close traffic is still in flight for the first |\n",
		us(r.warmSplit.first), us(r.warmSplit.restP99))
	fmt.Fprintf(w, "| new connection set-up, p50 / p99 | %s | %s | %s | — | — |\n",
		lat(r.newConn[0]), lat(r.newConn[1]), lat(r.newConn[2]))
	fmt.Fprintf(w, "| memory per idle stream | — | — | %s | ≤ 32 KiB in each process | %s |\n",
		kib(r.idleStream), benchfmt.Verdict(max(r.idleStream.client, r.idleStream.server) <= targetIdleStream))
	fmt.Fprintf(w, "| memory per idle connection | %s | %s | %s | — | — |\n",
		kib(r.idleConn[0]), kib(r.idleConn[1]), kib(r.idleConn[2]))
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Notes: throughput = bytes the server acknowledged reading / wall time, sent with hbone.Copy (as the")
	fmt.Fprintln(w, "proxies send: 32750-byte writes, two DATA frames that fill two TLS records) for every transport;")
	fmt.Fprintln(w, "raw TCP and TLS open one connection per stream, HBONE multiplexes all streams on one pooled connection.")
	fmt.Fprintln(w, "Warm set-up = Pool.Dial until the CONNECT's 200 on an established connection; streams are opened")
	fmt.Fprintf(w, "in batches of %d and closed, untimed, between batches. New connection =\n", setupBatch)
	fmt.Fprintln(w, "TCP connect; + TLS 1.3 mTLS handshake; + HTTP/2 preface and the first CONNECT for HBONE.")
	fmt.Fprintln(w, "Memory = (heap in use + goroutine stacks) after GC, delta over N idle streams/connections, / N, in")
	fmt.Fprintln(w, "each process; each server stream/connection is a sink goroutine blocked in Read with hbone.Copy's")
	fmt.Fprintln(w, "1 KiB idle buffer. An idle HBONE connection carries no stream; an HBONE stream's connection is shared.")
	fmt.Fprintln(w, "The idle-stream target is read per process (a proxy holds one end of each stream).")
}
