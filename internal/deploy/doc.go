// Package deploy owns the waypoint workload: it turns a Gateway of class
// istio-waypoint into the ServiceAccount, Deployment and Service (and, when a
// ConfigMap overlay asks for them, the HorizontalPodAutoscaler and
// PodDisruptionBudget) that run its waypoint proxy, exactly as Istio's
// deployment controller renders them, it provides the istio-waypoint
// GatewayClass the control plane creates when it is missing, and it computes
// the status Istio reports on a waypoint Gateway ([GatewayStatus]).
//
// It is pure: no I/O, no clients, no clocks. [Render], [Skip],
// [GatewayClass] and [GatewayStatus] are deterministic functions of their
// arguments; writing the objects and the status to a store (and removing the
// objects when the Gateway goes) is the control plane's job.
package deploy
