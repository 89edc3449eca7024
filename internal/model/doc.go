// Package model is meshway's intermediate representation (IR): the plain Go
// types that translation produces from Istio and Gateway API resources and that
// the control plane pushes to the proxies (waypoint and ztunnel).
//
// Types here carry data and a Validate method that says what is wrong, where
// and what to do; they do no I/O and import only the standard library, so
// every layer (translate, push, the proxies, meshctl) can share them. JSON
// tags use Istio's lowerCamelCase field names so a config file can be loaded
// with sigs.k8s.io/yaml.
package model
