// Package cli is the plumbing the two commands share: the product binary `fragile`
// (cmd/fragile) and the research binary `fragile-lab` (cmd/fragile-lab). It holds the
// subcommand dispatcher, the exit statuses, model reading and flag parsing helpers,
// and imports nothing of the ML stack, so that neither binary links the other's code
// through it.
package cli
