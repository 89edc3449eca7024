// Command etcd is etcd's own main, built at the version kube-apiserver pins, for
// the integration tests' control plane.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
