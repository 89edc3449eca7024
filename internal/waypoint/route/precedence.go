package route

import (
	"cmp"
	"regexp"
	"slices"
	"strings"
)

// Precedence. The table is one list, scanned in order; the first entry that
// holds wins:
//
//  1. VirtualService entries, first-match in the order given: route by route
//     as Compile gets them, rule by rule, match by match (Istio semantics).
//     They all come before any Gateway API entry, so a VirtualService bound
//     to a port overrides its HTTPRoutes and GRPCRoutes wherever it matches.
//     Their PathPrefix is Istio's plain string prefix ("/foo" matches
//     "/foobar"), not the Gateway API's element-wise one.
//  2. GRPCRoute entries. They only ever match gRPC requests, and the Gateway
//     API forbids merging them with HTTPRoutes, so they are ordered among
//     themselves and tried before every HTTPRoute entry: a gRPC request a
//     GRPCRoute matches goes by it. Order (the GRPCRoute spec): most
//     characters in the matched service, then in the matched method, then
//     most header matches. For exact services and methods this is
//     service+method > service only > method only > neither among entries
//     that can match the same request. A regular expression's characters
//     say nothing of how specific it is, so (as RegularExpression paths
//     among HTTPRoutes) a service or method given as one counts below every
//     exact one and above none, and ties with the other expressions.
//  3. HTTPRoute entries, ordered across all HTTPRoutes of the port by the
//     HTTPRoute spec, match by match: an Exact path; else the PathPrefix
//     with the most characters (a trailing "/" not counted, so "/foo" and
//     "/foo/" tie; no path counts as prefix "/"); RegularExpression paths
//     after every prefix, even "/", and tied among themselves (the spec
//     leaves their place to implementations); then a method match over
//     none; then most header matches; then most query parameter matches.
//
// Ties among Gateway API entries go to the oldest route (Created; a zero time
// is oldest), then the first by "namespace/name" compared as one string, then
// the route's position in Compile's input (only when a route is given twice),
// then the rule's index in the route, then the match's index in the rule.

// sortHTTP orders HTTPRoute entries by precedence.
func sortHTTP(es []entry) { slices.SortStableFunc(es, compareHTTP) }

// sortGRPC orders GRPCRoute entries by precedence.
func sortGRPC(es []entry) { slices.SortStableFunc(es, compareGRPC) }

// compareHTTP returns a negative number when a goes before b.
func compareHTTP(a, b entry) int {
	if c := cmp.Compare(b.pathKind, a.pathKind); c != 0 {
		return c // Exact > PathPrefix > RegularExpression
	}
	if a.pathKind == pathPrefix {
		if c := cmp.Compare(len(b.path), len(a.path)); c != 0 {
			return c
		}
	}
	if c := compareBool(a.method != "", b.method != ""); c != 0 {
		return c
	}
	if c := cmp.Compare(len(b.headers), len(a.headers)); c != 0 {
		return c
	}
	if c := cmp.Compare(len(b.query), len(a.query)); c != 0 {
		return c
	}
	return compareTies(a, b)
}

// compareGRPC returns a negative number when a goes before b.
func compareGRPC(a, b entry) int {
	if c := cmp.Compare(grpcRank(b.service, b.serviceRE), grpcRank(a.service, a.serviceRE)); c != 0 {
		return c
	}
	if c := cmp.Compare(grpcRank(b.grpcName, b.methodRE), grpcRank(a.grpcName, a.methodRE)); c != 0 {
		return c
	}
	if c := cmp.Compare(len(b.headers), len(a.headers)); c != 0 {
		return c
	}
	return compareTies(a, b)
}

// grpcRank is how specific a gRPC service or method match is, higher
// first: an exact name by its length (at least 2), a regular expression
// 1, none 0.
func grpcRank(exact string, re *regexp.Regexp) int {
	switch {
	case exact != "":
		return 1 + len(exact)
	case re != nil:
		return 1
	}
	return 0
}

// compareTies breaks ties between equally specific entries.
func compareTies(a, b entry) int {
	if c := a.rule.Route.Created.Compare(b.rule.Route.Created); c != 0 {
		return c
	}
	if c := strings.Compare(a.name, b.name); c != 0 {
		return c
	}
	if c := cmp.Compare(a.seq, b.seq); c != 0 {
		return c
	}
	if c := cmp.Compare(a.rule.Index, b.rule.Index); c != 0 {
		return c
	}
	return cmp.Compare(a.match, b.match)
}

// compareBool puts true first.
func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return -1
	default:
		return 1
	}
}
