package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/fragile-operator/fragile-operator/pkg/contract"
	"github.com/fragile-operator/fragile-operator/pkg/storage"
)

// TestCleanupCommand runs `fragile cleanup` as the cleanup Job does: the report and the exit
// status say deleted, kept (other bytes) or absent, and a missing digest deletes nothing.
func TestCleanupCommand(t *testing.T) {
	dir := t.TempDir()
	bundle, rep := filepath.Join(dir, "mnist.fwm"), filepath.Join(dir, "report.json")
	sealed := []byte("sealed bundle bytes")
	if err := os.WriteFile(bundle, sealed, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		args   []string
		code   int
		result contract.CleanupResult
		exists bool
	}{
		{[]string{"--bundle", bundle}, 2, contract.CleanupError, true},
		{[]string{"--bundle", bundle, "--bundle-digest", storage.Digest([]byte("other"))}, 0, contract.CleanupKept, true},
		{[]string{"--bundle", bundle, "--bundle-digest", storage.Digest(sealed)}, 0, contract.CleanupDeleted, false},
		{[]string{"--bundle", bundle, "--bundle-digest", storage.Digest(sealed)}, 0, contract.CleanupAbsent, false},
	} {
		code := run(t, append([]string{"cleanup", "--report", rep}, step.args...)...)
		var r contract.CleanupReport
		readJSON(t, rep, &r)
		_, err := os.Stat(bundle)
		if code != step.code || r.Result != step.result || (err == nil) != step.exists {
			t.Errorf("cleanup %v: exit %d, %+v, file there %v; want exit %d, %s, file there %v",
				step.args, code, r, err == nil, step.code, step.result, step.exists)
		}
	}
}
