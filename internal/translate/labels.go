package translate

// Values of istio.io/waypoint-for: the kinds of traffic a waypoint accepts.
// Any other value is carried through unchanged and, as in Istio, accepts no
// traffic.
const (
	TrafficService  = "service"
	TrafficWorkload = "workload"
	TrafficAll      = "all"
	TrafficNone     = "none"
)

// Labels and annotations read by waypoint binding. They are Istio's names so
// that manifests written for Istio's ambient mode apply unchanged.
const (
	// LabelUseWaypoint on a Service, ServiceEntry, Pod, WorkloadEntry or
	// Namespace names the waypoint to use; the value "none" opts out.
	LabelUseWaypoint = "istio.io/use-waypoint"
	// LabelUseWaypointNamespace names the waypoint's namespace. It only has
	// an effect together with LabelUseWaypoint on the same object.
	LabelUseWaypointNamespace = "istio.io/use-waypoint-namespace"
	// LabelWaypointFor on a Gateway or GatewayClass sets the traffic type.
	LabelWaypointFor = "istio.io/waypoint-for"
	// LabelIngressUseWaypoint on a Service, ServiceEntry or Namespace makes
	// ingress gateways send to the waypoint instead of the endpoints.
	LabelIngressUseWaypoint = "istio.io/ingress-use-waypoint"
	// LabelDataplaneMode enrolls a namespace or pod in ambient mode
	// ("ambient") or takes a pod out of it ("none").
	LabelDataplaneMode = "istio.io/dataplane-mode"
	// LabelGatewayName marks the pods (and workload entries) that are
	// instances of a Gateway.
	LabelGatewayName = "gateway.networking.k8s.io/gateway-name"
	// LabelManaged marks objects a gateway controller created; a waypoint's
	// own Service carries ManagedByMeshController.
	LabelManaged = "gateway.istio.io/managed"

	// AnnotationWaypointInboundBinding on a Gateway (else its GatewayClass)
	// selects the listener that decides allowedRoutes: "<NONE|PROXY>[/<port>]".
	AnnotationWaypointInboundBinding = "ambient.istio.io/waypoint-inbound-binding"
)

// Values of LabelManaged that mark a gateway's own Service. Such services
// never get a waypoint: a waypoint cannot sit in front of itself, and an
// east-west gateway forwards opaquely.
const (
	ManagedByMeshController     = "istio.io-mesh-controller"
	ManagedByEastWestController = "istio.io-eastwest-controller"
)

// DataplaneModeAmbient and DataplaneModeNone are the values of
// LabelDataplaneMode that matter to binding explanations.
const (
	DataplaneModeAmbient = "ambient"
	DataplaneModeNone    = "none"
)

// WaypointClassName is the GatewayClass of waypoints meshway deploys. Binding
// does not check it: like Istio, any Gateway with an address is a waypoint.
const WaypointClassName = "istio-waypoint"

// ConditionWaypointBound is the condition Istio writes on Services,
// ServiceEntries and WorkloadEntries; the Reason* constants are its reasons.
const (
	ConditionWaypointBound = "istio.io/WaypointBound"

	ReasonWaypointAccepted                = "WaypointAccepted"
	ReasonWaypointIsNotReady              = "WaypointIsNotReady"
	ReasonAttachmentDenied                = "AttachmentDenied"
	ReasonUnsupportedTrafficType          = "UnsupportedTrafficType"
	ReasonCrossNamespaceWaypointForbidden = "CrossNamespaceWaypointForbidden"
)

// listener protocols that matter to allowedRoutes.
const (
	protocolHBONE       = "HBONE"
	portHBONE           = 15008
	protocolProxy       = "istio.io/PROXY"
	inboundBindingNone  = "NONE"
	inboundBindingProxy = "PROXY"
)
