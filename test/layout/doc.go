// Package layout holds the repository's house rules as tests: which packages may link
// which. The product binary carries the product and not the lab, the controller never
// links the ML stack, and the contract between them depends on nothing.
package layout
