// Package identity owns the mesh's workload identities: SPIFFE IDs of the
// form spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>, the
// certificate authority that signs them, the gRPC CSR service through which
// nodes obtain them, the client-side [Manager] that keeps them renewed, the
// trust [Bundle] (several roots during a root rotation), and the tls.Config
// builders that verify a peer's SPIFFE ID.
//
// # Certificates
//
// Workload certificates are ECDSA P-256, carry exactly one URI SAN (the
// SPIFFE ID) and no DNS names, and live 24 h unless configured otherwise.
// A [Manager] renews each one at half of its remaining life; renewed
// certificates are picked up by new TLS handshakes only, so established
// connections are never interrupted.
//
// # CA files
//
// The CA keeps its state in a directory laid out like Istio's cacerts
// secret: ca-cert.pem (signing certificate), ca-key.pem (its key, mode
// 0600), cert-chain.pem (the signing certificate's chain up to the root) and
// root-cert.pem (every root the mesh trusts). [NewCA] generates a
// self-signed root there on first start; [LoadPluggedCA] only loads files an
// operator placed. Files are written atomically (temporary file + rename).
//
// # Authorization of certificate requests
//
// The [Server] authenticates each request with an [Authenticator] (a node
// token, [NodeTokenAuthenticator]; or a Kubernetes ServiceAccount token,
// reviewed by internal/kube) and asks an [Authorizer] ([HostedIdentities],
// [OwnServiceAccount]) whether that caller may obtain the requested
// identity.
//
// # The control plane's secure port
//
// The control plane serves the CSR service and xDS over TLS with a
// [ServingCert] from its own CA, naming its DNS names and IPs. A proxy
// verifies it by hostname against the mesh's roots in a [RootFile]
// (root-cert.pem of ConfigMap istio-ca-root-cert in a pod) and
// authenticates with [TokenFileCredentials].
package identity
