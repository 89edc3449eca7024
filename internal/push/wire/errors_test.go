package wire

import (
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/meshway/meshway/api/meshpb"
	"github.com/meshway/meshway/internal/model"
)

// smallConfig has one of each thing the error cases below break.
func smallConfig() *meshpb.WaypointConfig {
	return Waypoint(&model.Waypoint{
		Name: "waypoint", Namespace: "default",
		Services: []model.Service{{Name: "reviews", Ports: []model.ServicePort{
			{Port: 80},
			{Port: 9080, Routes: []model.HTTPRoute{{Name: "r", Rules: []model.RouteRule{{
				Filters:  []model.Filter{{Type: model.FilterRequestRedirect, RequestRedirect: &model.RequestRedirect{Port: 8080}}},
				Backends: []model.Backend{{Cluster: "c", Filters: []model.Filter{{Type: model.FilterRequestRedirect, RequestRedirect: &model.RequestRedirect{}}}}},
				Retry:    &model.Retry{Attempts: 2},
				Fault:    &model.Fault{Delay: &model.FaultDelay{Percent: 1}},
			}}}}},
		}}},
		Workloads: []model.Workload{{Name: "w", Ports: []model.WorkloadPort{{Port: 80}}}},
		Clusters: []model.Cluster{{Name: "a"}, {Name: "b"}, {
			Name:             "c",
			OutlierDetection: &model.OutlierDetection{Consecutive5xxErrors: 5},
		}},
		RateLimits: []model.LocalRateLimit{{Name: "l", Rules: []model.RateLimitRule{{Limit: model.RateLimitValue{Requests: 1}}}}},
	})
}

func TestToModelErrorsNameTheField(t *testing.T) {
	tooLong := &durationpb.Duration{Seconds: math.MaxInt64/int64(time.Second) + 1}
	rule := func(pb *meshpb.WaypointConfig) *meshpb.RouteRule { return pb.Services[0].Ports[1].Routes[0].Rules[0] }
	for _, tc := range []struct {
		name   string
		mutate func(*meshpb.WaypointConfig)
		want   string
	}{{
		name:   "service port above 65535",
		mutate: func(pb *meshpb.WaypointConfig) { pb.Services[0].Ports[1].Port = 70000 },
		want:   "services[0].ports[1].port: port 70000 is out of range 0-65535",
	}, {
		name:   "workload port above 65535",
		mutate: func(pb *meshpb.WaypointConfig) { pb.Workloads[0].Ports[0].Port = 1 << 16 },
		want:   "workloads[0].ports[0].port: port 65536 is out of range",
	}, {
		name:   "redirect port above 65535",
		mutate: func(pb *meshpb.WaypointConfig) { rule(pb).Filters[0].RequestRedirect.Port = 65536 },
		want:   "services[0].ports[1].routes[0].rules[0].filters[0].requestRedirect.port: port 65536",
	}, {
		name:   "backend filter redirect port",
		mutate: func(pb *meshpb.WaypointConfig) { rule(pb).Backends[0].Filters[0].RequestRedirect.Port = 100000 },
		want:   "services[0].ports[1].routes[0].rules[0].backends[0].filters[0].requestRedirect.port: port 100000",
	}, {
		name:   "timeout beyond time.Duration",
		mutate: func(pb *meshpb.WaypointConfig) { rule(pb).Timeouts = &meshpb.Timeouts{BackendRequest: tooLong} },
		want:   "services[0].ports[1].routes[0].rules[0].timeouts.backendRequest: duration",
	}, {
		name: "malformed duration",
		mutate: func(pb *meshpb.WaypointConfig) {
			rule(pb).Retry.PerTryTimeout = &durationpb.Duration{Seconds: 1, Nanos: -1}
		},
		want: "services[0].ports[1].routes[0].rules[0].retry.perTryTimeout: ",
	}, {
		name:   "fault delay beyond time.Duration",
		mutate: func(pb *meshpb.WaypointConfig) { rule(pb).Fault.Delay.FixedDelay = tooLong },
		want:   "services[0].ports[1].routes[0].rules[0].fault.delay.fixedDelay: duration",
	}, {
		name: "malformed timestamp",
		mutate: func(pb *meshpb.WaypointConfig) {
			pb.Services[0].Ports[1].Routes[0].Created = &timestamppb.Timestamp{Nanos: 2e9}
		},
		want: "services[0].ports[1].routes[0].created: ",
	}, {
		name:   "outlier interval beyond time.Duration",
		mutate: func(pb *meshpb.WaypointConfig) { pb.Clusters[2].OutlierDetection.Interval = tooLong },
		want:   "clusters[2].outlierDetection.interval: duration",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			pb := smallConfig()
			if _, err := ToModel(pb); err != nil {
				t.Fatalf("the unbroken configuration fails: %v", err)
			}
			tc.mutate(pb)
			_, err := ToModel(pb)
			if err == nil {
				t.Fatalf("no error; want one starting %q", tc.want)
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error:\n  %v\nwant it to start with\n  %s", err, tc.want)
			}
		})
	}
}

func TestToModelNil(t *testing.T) {
	if _, err := ToModel(nil); err == nil {
		t.Error("ToModel(nil): no error")
	}
	if Waypoint(nil) != nil {
		t.Error("Waypoint(nil) is not nil")
	}
}

// TestToModelNilElements: a message built in Go (not decoded) may hold nil
// list elements; they convert as empty ones instead of panicking.
func TestToModelNilElements(t *testing.T) {
	pb := &meshpb.WaypointConfig{
		Services:   []*meshpb.Service{nil, {Ports: []*meshpb.ServicePort{nil}}},
		Clusters:   []*meshpb.Cluster{nil},
		Policies:   []*meshpb.AuthorizationPolicy{{Rules: []*meshpb.AuthorizationRule{nil}}},
		RateLimits: []*meshpb.LocalRateLimit{{Rules: []*meshpb.RateLimitRule{nil}}},
	}
	w, err := ToModel(pb)
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Services) != 2 || len(w.Services[1].Ports) != 1 || len(w.Clusters) != 1 {
		t.Errorf("nil elements were dropped: %+v", w)
	}
}
