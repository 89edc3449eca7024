//go:build !linux

package hugetext

func remap() (int, error) { return 0, ErrUnavailable }
