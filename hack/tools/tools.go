//go:build tools

// Package tools pins the developer tools the Makefile builds, apart from the
// product's own module so their dependencies never leak into it.
package tools

import (
	_ "github.com/golangci/golangci-lint/v2/cmd/golangci-lint"
	_ "google.golang.org/grpc/cmd/protoc-gen-go-grpc"
	_ "google.golang.org/protobuf/cmd/protoc-gen-go"
)
