// Package doccheck holds the repository's documentation checks, run as
// tests: every exported identifier has a doc comment, and every Go code
// block in docs/ that is a complete program compiles.
package doccheck
