package controlplane

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// LeadByFile is leader election for replicas sharing one embedded store: the
// leader holds an exclusive flock on path (a dot file in the store's
// directory, which the store ignores). The kernel drops the lock when the
// process dies, so a crashed leader never blocks the others. lead(true) is
// called once the lock is held; lead(false) when ctx ends.
func LeadByFile(ctx context.Context, path string, retry time.Duration, lead func(bool)) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("leader lock: %w", err)
	}
	defer func() { _ = f.Close() }()
	t := time.NewTicker(retry)
	defer t.Stop()
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("leader lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
	lead(true)
	<-ctx.Done()
	lead(false)
	// Closing the file releases the lock for the next replica.
	return nil
}
