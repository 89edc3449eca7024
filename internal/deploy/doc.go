// Package deploy owns the waypoint workload: it turns a Gateway of class
// istio-waypoint into the ServiceAccount, Deployment and Service (and, when a
// ConfigMap overlay asks for them, the HorizontalPodAutoscaler and
// PodDisruptionBudget) that run its waypoint proxy, exactly as Istio's
// deployment controller renders them, and it provides the istio-waypoint
// GatewayClass the control plane creates when it is missing.
//
// It is pure: no I/O, no clients, no clocks. [Render], [Skip] and
// [GatewayClass] are deterministic functions of their arguments; writing the
// objects to a store (and removing them when the Gateway goes) is the
// control plane's job.
package deploy
