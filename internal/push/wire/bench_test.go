package wire

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/meshway/meshway/api/meshpb"
)

const benchGolden = "../../translate/testdata/waypointconfig/virtualservice.out.yaml"

// BenchmarkWaypointMarshal measures what the control plane does per push of
// a waypoint translated from the VirtualService golden input (the largest),
// and, for the proxy, the reverse.
func BenchmarkWaypointMarshal(b *testing.B) {
	w := &loadGolden(b, benchGolden)[0]
	b.Run("ToWire", func(b *testing.B) {
		var n int
		for b.Loop() {
			data, err := proto.Marshal(Waypoint(w))
			if err != nil {
				b.Fatal(err)
			}
			n = len(data)
		}
		b.SetBytes(int64(n))
	})
	b.Run("FromWire", func(b *testing.B) {
		data, err := proto.Marshal(Waypoint(w))
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			var pb meshpb.WaypointConfig
			if err := proto.Unmarshal(data, &pb); err != nil {
				b.Fatal(err)
			}
			if _, err := ToModel(&pb); err != nil {
				b.Fatal(err)
			}
		}
	})
}
