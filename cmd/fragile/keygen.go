package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/fragile-operator/fragile-operator/pkg/fragile"
)

func init() { subcommands["keygen"] = keygen }

// keygen writes a new secret key, readable only by its owner, and never overwrites
// an existing file: losing a key makes its watermarks unverifiable.
func keygen(_ context.Context, args []string) int {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	out := fs.String("out", "", "key file to create (required; must not exist)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *out == "" {
		return fail("keygen", errors.New("--out is required"))
	}
	key, err := fragile.NewKey(rand.Reader)
	if err != nil {
		return fail("keygen", err)
	}
	text, _ := key.MarshalText()
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fail("keygen", err)
	}
	if _, err := f.Write(append(text, '\n')); err != nil {
		f.Close()
		return fail("keygen", err)
	}
	if err := f.Close(); err != nil {
		return fail("keygen", err)
	}
	fmt.Fprintf(os.Stderr, "wrote key %s (key ID %s)\n", *out, key.ID())
	return 0
}
