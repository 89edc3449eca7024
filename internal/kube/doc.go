// Package kube is the config store on a Kubernetes cluster, and the only package
// that imports client-go: typed clientsets for the core, Gateway API and Istio
// types, informers for watches, server-side apply with a field manager per
// component, and status through the status subresource. It also holds what the
// control plane's secure port needs from the cluster: the TokenReview
// authenticator of ServiceAccount tokens and the CA's Secrets.
package kube
