// Package recipe is what hack/benchscale and its training replay (hack/benchscale/trainreplay)
// agree on: the one training the benchmark ran, and how a training Job's command line is
// compared with it.
package recipe

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"slices"
	"strings"
)

// FileName is the recipe's file, next to the trainreplay executable.
const FileName = "replay.json"

// Recipe is the one training the benchmark ran and what it produced.
type Recipe struct {
	// Fragile is the real fragile binary.
	Fragile string `json:"fragile"`
	// ModelSHA256 and KeySHA256 are the hex digests of the model and key files it read.
	ModelSHA256 string `json:"modelSHA256"`
	KeySHA256   string `json:"keySHA256"`
	// Flags are its other flags, as Flags returns them.
	Flags []string `json:"flags"`
	// Bundle and Report are the sealed bundle and the JSON report it wrote.
	Bundle string `json:"bundle"`
	Report string `json:"report"`
}

// outputs are the flags that name files read or say where results go: not part of a recipe.
var outputs = map[string]bool{"--model": true, "--key": true, "--out": true, "--out-secret": true,
	"--progress-secret": true, "--report": true}

// Flags splits a `fragile watermark` command line of "--name value" pairs (as the operator
// writes it) into its recipe flags, "--name=value" sorted, and the values of the output
// flags; ok is false for a command line of any other shape.
func Flags(args []string) (recipe []string, out map[string]string, ok bool) {
	if len(args)%2 != 0 {
		return nil, nil, false
	}
	out = map[string]string{}
	for i := 0; i < len(args); i += 2 {
		name, value := args[i], args[i+1]
		if !strings.HasPrefix(name, "--") || strings.Contains(name, "=") {
			return nil, nil, false
		}
		if outputs[name] {
			out[name] = value
			continue
		}
		recipe = append(recipe, name+"="+value)
	}
	slices.Sort(recipe)
	return recipe, out, true
}

// FileDigest is the hex SHA-256 of a file's bytes.
func FileDigest(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// Write stores r as JSON at path.
func Write(path string, r Recipe) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// Read loads the recipe at path.
func Read(path string) (Recipe, error) {
	var r Recipe
	b, err := os.ReadFile(path)
	if err != nil {
		return r, err
	}
	return r, json.Unmarshal(b, &r)
}
