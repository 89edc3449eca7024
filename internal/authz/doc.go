// Package authz evaluates Istio AuthorizationPolicy (ALLOW, DENY, AUDIT) for
// meshway's proxies: the waypoint (L7, per HTTP request) and ztunnel (L4, per
// connection) share it.
//
// Policies ([model.AuthorizationPolicy]) are compiled once by [Compile] into
// an [Engine]; [Engine.Evaluate] then decides one [Request] without allocating.
// The decision follows Istio: a request matched by any DENY policy is denied;
// otherwise it is allowed when no ALLOW policy applies or when an ALLOW policy
// matches it, and denied otherwise. AUDIT policies only mark the decision.
// A denied HTTP request is answered [DeniedStatus] with [DeniedBody].
//
// Matching, as Istio documents it
// (https://istio.io/latest/docs/reference/config/security/authorization-policy/)
// and implements it (istio/istio pilot/pkg/security/authz/model):
//
//   - Strings match exactly ("abc"), by prefix ("abc*"), by suffix ("*abc")
//     or by presence ("*": any non-empty value; for headers: the header is
//     present, even empty). Hosts match case-insensitively against the
//     Host/:authority as sent (with its port, if any); everything else is
//     case-sensitive.
//   - Principals are peer identities without "spiffe://"; namespaces are the
//     peer identity's namespace ([PeerFromSPIFFE]). A request without a peer
//     identity (plaintext) matches no principal or namespace value, so it
//     matches every notPrincipals/notNamespaces.
//   - ipBlocks match [Request.SourceIP]; remoteIpBlocks match
//     [Request.RemoteIP] (the original client, from X-Forwarded-For), or the
//     source IP when the request has none.
//   - Paths match without the query string and fragment. No other
//     normalization is done here: the waypoint must normalize the path
//     (Istio's BASE normalization) before calling Evaluate and forward the
//     same path it authorized.
//   - A header with several values matches a value when any one of them does
//     (Envoy's behaviour since CVE-2026-26308, GHSA-ghc4-35x6-crw5; earlier
//     Envoy joined them with "," which let "x: user" + "x: admin" slip past a
//     DENY on "admin").
//   - For a non-HTTP request (Request.HTTP false) the HTTP-only fields (hosts,
//     methods, paths, request.headers) cannot be evaluated. As on Istio's TCP
//     filter chain (pilot/pkg/security/authz/builder, model.checkError): an
//     ALLOW rule using any of them never matches (it is skipped, so fewer
//     requests are allowed), while DENY and AUDIT rules are evaluated with
//     those fields ignored (so more requests are denied or audited).
package authz
