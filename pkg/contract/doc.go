// Package contract is what the operator (controllers/) and the `fragile` commands its
// Jobs run agree on: the JSON reports a Job leaves as its termination message, the text
// form of a key, the data keys of the key and bundle Secrets, and the annotations and
// environment variables that pass between them.
//
// It imports only the standard library, on purpose: the controller reads reports and
// writes keys through this package without linking the ML stack (gorgonia, tensor,
// gonum), and each of these definitions exists once, here.
package contract
