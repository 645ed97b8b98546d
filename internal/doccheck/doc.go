// Package doccheck holds the repository's documentation checks, run as
// tests: every exported identifier has a doc comment, every Go code block
// of README.md and docs/ that is a complete program compiles, and every
// other Go block (a fragment) type-checks against the current API, wrapped
// in a function with the imports it needs and the names of the prose
// declared beside it (see fragments_test.go).
package doccheck
