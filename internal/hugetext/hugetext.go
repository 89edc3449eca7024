// Package hugetext moves the running program's machine code onto
// transparent huge pages.
//
// A lightly loaded proxy runs each request's code with cold caches: the
// generator, the backend and other processes ran on the CPU in between.
// On small (4 KiB) pages the code a request runs through is spread over a
// few hundred pages, each a TLB miss and, in a virtual machine, a
// two-level page walk; on 2 MiB pages it takes a handful of TLB entries.
// In make bench-waypoint that is 8-9% of the waypoint's CPU at 1,000
// requests/s (docs/benchmarks.md), for about 3 MB more resident memory:
// the whole of the moved code is resident, not only the pages run.
//
// The kernel maps an executable's file on small pages (huge pages for
// files need a filesystem that has them), so Remap copies the code into
// anonymous memory that asks for huge pages and moves that memory over
// the code, as ClickHouse and Intel's iodlr do. Tools that read the
// executable to name the code at an address (perf) no longer can for the
// moved part. Go's profiles and stack traces still name every function
// (a profile's header may then give another file as the program's).
package hugetext

import "errors"

// ErrUnavailable is returned when the kernel gives no huge pages: the
// system is not Linux, transparent huge pages are turned off, or none
// was free.
var ErrUnavailable = errors.New("no transparent huge pages")

// Remap moves the program's machine code onto huge pages and returns how
// many bytes moved. Only whole 2 MiB pages move; the rest stays where it
// is. On an error nothing has moved but what the count says, and the
// program runs on as before.
func Remap() (int, error) { return remap() }
