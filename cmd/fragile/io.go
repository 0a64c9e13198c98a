package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/fragile-operator/fragile-operator/pkg/fragile"
)

// readKey reads a key file written by `fragile keygen` (or the operator's key Secret).
func readKey(path string) (fragile.Key, error) {
	var k fragile.Key
	text, err := os.ReadFile(path)
	if err != nil {
		return k, fmt.Errorf("key file: %w", err)
	}
	if err := k.UnmarshalText(text); err != nil {
		return k, fmt.Errorf("key file %s: %w", path, err)
	}
	return k, nil
}

// writeReport writes v as one JSON object to path: a file for people, or a
// container's termination message path for the operator.
func writeReport(path string, v any) error {
	if path == "" {
		return nil
	}
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}
