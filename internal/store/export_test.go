package store

// SetFailTempWrite makes d's file writes fail after the temp file is written
// and before it replaces the real file, as a full disk or a crash would.
func SetFailTempWrite(d *Dir, fail func(tmpPath string) error) { d.failTempWrite = fail }
