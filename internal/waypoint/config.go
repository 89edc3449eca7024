package waypoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	sigsyaml "sigs.k8s.io/yaml"

	"github.com/meshway/meshway/internal/authz"
	"github.com/meshway/meshway/internal/model"
	"github.com/meshway/meshway/internal/telemetry"
	"github.com/meshway/meshway/internal/waypoint/ratelimit"
	"github.com/meshway/meshway/internal/waypoint/route"
)

// LoadFile reads and validates a waypoint configuration file (YAML or
// JSON, the fields of model.Waypoint). Errors name the file and the field.
func LoadFile(path string) (*model.Waypoint, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var w model.Waypoint
	if err := sigsyaml.UnmarshalStrict(data, &w); err != nil {
		return nil, fmt.Errorf("%s: %w", path, decodeError(err))
	}
	if err := w.Validate(); err != nil {
		return nil, fmt.Errorf("%s: invalid waypoint configuration:\n%w", path, err)
	}
	return &w, nil
}

// decodeError says what is wrong with a file sigs.k8s.io/yaml could not
// decode, and what to do, without the layers it passed through ("error
// converting YAML to JSON", "error unmarshaling JSON: while decoding JSON:
// json:").
func decodeError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return fmt.Errorf("%s: %s where %s is expected; fix the value", te.Field, jsonValueWords[te.Value], typeWords(te.Type))
	}
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, "error converting YAML to JSON: "); ok {
		return fmt.Errorf("malformed YAML: %s; fix the syntax", strings.TrimPrefix(rest, "yaml: "))
	}
	msg = strings.TrimPrefix(msg, "error unmarshaling JSON: ")
	msg = strings.TrimPrefix(msg, "while decoding JSON: ")
	msg = strings.TrimPrefix(msg, "json: ")
	if strings.HasPrefix(msg, "unknown field ") {
		msg += "; remove it or fix its spelling"
	}
	return errors.New(msg)
}

// jsonValueWords names the kinds of JSON value json.UnmarshalTypeError
// reports.
var jsonValueWords = map[string]string{
	"string": "a string", "number": "a number", "bool": "true or false",
	"array": "a list", "object": "a mapping",
}

// typeWords names what a field of type t takes, as a configuration's author
// would say it.
func typeWords(t reflect.Type) string {
	if t == nil {
		return "another value"
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Struct, reflect.Map:
		return "a mapping"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Pointer:
		return typeWords(t.Elem())
	}
	return "another value"
}

// config is a compiled configuration: what the data path reads, never
// changed once published.
type config struct {
	src *model.Waypoint
	// dests maps an original destination, "ip:port" or "hostname:port",
	// to what handles it.
	dests     map[string]*dest
	workloads map[netip.Addr]*model.Workload
	clusters  map[string]*cluster
	sampler   telemetry.Sampler
	limiters  map[string]*ratelimit.Limiter // by service namespace/name
	wlLimiter *ratelimit.Limiter            // the waypoint's own limits, for workload traffic
	authz     *authz.Engine                 // the waypoint's own policies, for workload traffic
	// wlDests caches the destinations of workload-addressed traffic
	// ("ip:port" → *dest), made on first use: a request must not rebuild
	// its destination, nor its cluster's load-balancing and outlier state.
	wlDests sync.Map
}

// dest is one captured destination.
type dest struct {
	name     string // namespace/name of the service or workload
	protocol model.Protocol
	table    *route.Table // nil when no route is attached
	def      *cluster     // where requests no route matches go
	authz    *authz.Engine
	ip       netip.Addr // the destination address, for policies (invalid for hostnames)
	port     uint16
	service  telemetry.Service
	limiter  *ratelimit.Limiter // nil: no rate limit
}

// compile validates w and builds what the data path uses; prev (nil at
// first) hands its clusters' endpoint state over to the new ones.
func compile(w *model.Waypoint, prev *config) (*config, error) {
	if err := w.Validate(); err != nil {
		return nil, err
	}
	c := &config{src: w, dests: map[string]*dest{}, workloads: map[netip.Addr]*model.Workload{}, clusters: map[string]*cluster{}, limiters: map[string]*ratelimit.Limiter{}}
	for i := range w.Workloads {
		for _, a := range w.Workloads[i].Addresses {
			addr, _ := netip.ParseAddr(a) // validated
			c.workloads[addr] = &w.Workloads[i]
		}
	}
	for i := range w.Clusters {
		mc := &w.Clusters[i]
		var old *cluster
		if prev != nil {
			old = prev.clusters[mc.Name]
		}
		c.clusters[mc.Name] = newCluster(mc, old)
	}
	var errs []error
	// Without policies or limits the engine and the limiter stay nil: a
	// request then skips them instead of building what they would read.
	var (
		waypointAuthz  *authz.Engine
		waypointLimits *ratelimit.Limiter
		err            error
	)
	if len(w.Policies) > 0 {
		if waypointAuthz, err = authz.Compile(w.Policies); err != nil {
			errs = append(errs, fmt.Errorf("policies: %w", err))
		}
	}
	if len(w.RateLimits) > 0 {
		if waypointLimits, err = ratelimit.Compile(w.RateLimits); err != nil {
			errs = append(errs, fmt.Errorf("rateLimits: %w", err))
		}
	}
	if prev != nil && prev.wlLimiter != nil && waypointLimits != nil {
		waypointLimits.Inherit(prev.wlLimiter)
	}
	c.wlLimiter = waypointLimits
	for i := range w.Services {
		s := &w.Services[i]
		limiter := waypointLimits
		if len(s.RateLimits) > 0 || len(w.RateLimits) > 0 {
			// Each service its own buckets, as Envoy Gateway limits per route.
			limiter, err = ratelimit.Compile(append(slices.Clone(w.RateLimits), s.RateLimits...))
			if err != nil {
				errs = append(errs, fmt.Errorf("services[%d].rateLimits: %w", i, err))
			}
			if prev != nil {
				// A push must not refill every bucket.
				if old := prev.limiters[s.Namespace+"/"+s.Name]; old != nil && limiter != nil {
					limiter.Inherit(old)
				}
			}
			c.limiters[s.Namespace+"/"+s.Name] = limiter
		}
		engine := waypointAuthz
		if len(s.Policies) > 0 {
			// One engine per target: Istio evaluates the waypoint's and the
			// service's policies together (DENY first, then ALLOW).
			engine, err = authz.Compile(append(slices.Clone(w.Policies), s.Policies...))
			if err != nil {
				errs = append(errs, fmt.Errorf("services[%d].policies: %w", i, err))
			}
		}
		for j := range s.Ports {
			p := &s.Ports[j]
			d := &dest{
				name: s.Namespace + "/" + s.Name, protocol: p.Protocol, def: c.clusters[p.Cluster], authz: engine, port: p.Port,
				limiter: limiter,
				service: telemetry.Service{Host: s.Hostname, Name: s.Name, Namespace: s.Namespace},
			}
			if len(p.Routes) > 0 {
				t, err := route.Compile(p.Routes)
				if err != nil {
					errs = append(errs, fmt.Errorf("services[%d].ports[%d].routes: %w", i, j, err))
					continue
				}
				d.table = t
			}
			port := strconv.Itoa(int(p.Port))
			if s.Hostname != "" {
				c.dests[s.Hostname+":"+port] = d
			}
			for _, a := range s.Addresses {
				addr, _ := netip.ParseAddr(a) // validated
				da := *d
				da.ip = addr
				c.dests[netip.AddrPortFrom(addr, p.Port).String()] = &da
			}
		}
	}
	c.authz = waypointAuthz
	tracing := 1.0 // Istio's default sampling percentage
	if p := w.Telemetry.TracingPercent; p != nil {
		tracing = *p
	}
	c.sampler = telemetry.NewSampler(tracing)
	return c, errors.Join(errs...)
}

// lookup returns the destination for an original destination address,
// or nil if the waypoint does not capture it.
func (c *config) lookup(addr string) *dest {
	if d := c.dests[addr]; d != nil {
		return d
	}
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil
	}
	if d := c.dests[ap.String()]; d != nil { // another spelling of the address
		return d
	}
	wl := c.workloads[ap.Addr().Unmap()]
	if wl == nil {
		return nil
	}
	key := ap.String()
	if d, ok := c.wlDests.Load(key); ok {
		return d.(*dest)
	}
	// Workload-addressed: to the workload itself, on the port asked for.
	proto := model.ProtocolTCP
	for _, p := range wl.Ports {
		if p.Port == ap.Port() {
			proto = p.Protocol
		}
	}
	d := &dest{
		name: wl.Namespace + "/" + wl.Name, protocol: proto,
		def:   newCluster(&model.Cluster{Name: key, Endpoints: []model.Endpoint{{Address: key, Identity: wl.Identity}}}, nil),
		authz: c.authz, ip: ap.Addr(), port: ap.Port(), limiter: c.wlLimiter,
	}
	actual, _ := c.wlDests.LoadOrStore(key, d)
	return actual.(*dest)
}

// atomicConfig holds the configuration in use.
type atomicConfig = atomic.Pointer[config]
