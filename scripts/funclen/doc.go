// Package funclen holds a test, no code: it keeps every function in cmd/
// and agent/ within a screen (80 lines), as STYLE.md asks ("a function
// fits on a screen").
package funclen
