package hbone

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
)

// TestBodyPipeFrames: no read exceeds one TLS record's payload, and
// everything written arrives, in order, before io.EOF. (How many reads are
// short depends on whether the reader gets ahead of the writer.)
func TestBodyPipeFrames(t *testing.T) {
	b := newBodyPipe()
	want := make([]byte, 0, 10*32<<10)
	for i := range cap(want) {
		want = append(want, byte(i*7))
	}
	go func() {
		for p := want; len(p) > 0; p = p[32<<10:] {
			if _, err := b.Write(p[:32<<10]); err != nil {
				t.Error(err)
				return
			}
		}
		_ = b.CloseWrite()
	}()
	var got []byte
	buf := make([]byte, 16<<10) // the transport's scratch buffer
	for {
		n, err := b.Read(buf)
		if n > recordPayload {
			t.Fatalf("read %d bytes; a frame of more than %d does not fit one TLS record", n, recordPayload)
		}
		got = append(got, buf[:n]...)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, not the %d written", len(got), len(want))
	}
}

// TestBodyPipeUnreadWriteFails: a Write the transport does not read from
// blocks until the body is closed and fails, and an abort drops what is
// buffered.
func TestBodyPipeUnreadWriteFails(t *testing.T) {
	b := newBodyPipe()
	done := make(chan error, 1)
	go func() {
		_, err := b.Write([]byte("late"))
		done <- err
	}()
	_ = b.Close()
	if err := <-done; !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("write after the transport closed the body: %v", err)
	}

	b = newBodyPipe()
	go func() { _, _ = b.Write(make([]byte, 20000)) }()
	if n, err := b.Read(make([]byte, 16<<10)); n != recordPayload || err != nil {
		t.Fatalf("read %d, %v", n, err)
	}
	b.CloseWithError(net.ErrClosed)
	if _, err := b.Read(make([]byte, 16<<10)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after abort: %v; want net.ErrClosed, the buffered tail dropped", err)
	}
}
