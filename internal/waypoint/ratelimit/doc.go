// Package ratelimit enforces meshway's LocalRateLimitPolicy
// (ratelimit.meshway.io/v1alpha1) in the waypoint: local, per-replica token
// buckets for HTTP requests, modelled on Envoy Gateway's BackendTrafficPolicy
// local rate limit.
//
// Policies ([model.LocalRateLimit]) are compiled once by [Compile] into a
// [Limiter]; [Limiter.Allow] then decides one [Request] at the time it is
// given (time is injected, so tests need no sleeps). A Limiter is safe for
// concurrent use and runs no goroutines: buckets are refilled, exactly, when
// they are looked at.
//
// Semantics:
//
//   - A rule matches a request when every client selector holds and, if the
//     rule names a route, the request went by that route (and rule). A rule
//     without selectors matches every request of its target.
//   - Every matching rule must have a token for the request to be allowed:
//     the most restrictive rule wins. An allowed request takes one token from
//     each matching rule's bucket; a denied request takes none (tokens taken
//     from rules checked before the one that denied are given back).
//   - A rule's bucket holds Burst tokens (Limit.Requests when Burst is
//     unset) and gains Limit.Requests tokens per Limit.Unit, continuously.
//     The arithmetic is in integers (nanoseconds times requests), so refills
//     are exact: with 3 requests per second the 4th token of a drained
//     bucket is there after exactly 333,333,334ns, not "about a third of a
//     second".
//   - Distinct selectors give each distinct value its own bucket: each value
//     of the header (several values of one header are joined with ","),
//     each source IP inside the CIDR, each peer principal. A rule with
//     several Distinct fields has one bucket per combination. Keys longer
//     than 64 bytes are replaced by their SHA-256, so a bucket costs a
//     bounded amount of memory whatever clients send.
//   - A Distinct rule keeps at most [MaxBuckets] buckets, in 16 shards of
//     MaxBuckets/16. When a shard is full, its least recently used bucket is
//     evicted. Evicting a bucket that has refilled to Burst loses nothing (a
//     new bucket starts full); evicting one that has not gives that client a
//     fresh, full bucket. So a client varying a header to mint buckets cannot
//     exhaust memory; at worst, under such churn, the limit is lenient for the
//     clients whose buckets were evicted.
//   - Header selectors Exact and RegularExpression (RE2, whole value) match
//     when any one value of the header does, so a second header line cannot
//     take a request out of a limit. The header "Host" is matched against
//     [Request.Host]. A request without the header matches no header
//     selector, Distinct included: add a rule without that selector to limit
//     such requests too.
//   - sourceCIDR matches [Request.SourceIP] (IPv4-mapped IPv6 addresses are
//     unmapped); a request without one matches no sourceCIDR selector.
//     sourcePrincipal matches [Request.SourcePrincipal]; a plaintext request
//     (no principal) matches none.
//
// Answers: a denied request should be answered [DeniedStatus] (429) with
// [DeniedBody], Envoy's local rate limit answer, and the headers
// [Decision.SetHeaders] writes: retry-after (whole seconds until the
// request would be allowed, rounded up), x-ratelimit-limit and
// x-ratelimit-remaining. When several rules match, the headers describe one
// rule: for a denied request the denying rule that frees up last, for an
// allowed one the rule with the fewest tokens left. x-ratelimit-limit is
// that rule's bucket size (Burst, as Envoy reports max_tokens) and
// x-ratelimit-remaining the whole tokens left in its bucket after this
// request.
//
// State across configuration changes: [Limiter.Inherit] makes a newly
// compiled Limiter share the buckets of the one it replaces, for every rule
// that is unchanged (same policy, same position, same fields), so that
// pushing an unrelated change (new endpoints) does not refill every bucket.
package ratelimit
