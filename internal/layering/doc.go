// Package layering holds the import rules of the repository, checked by
// its test over `go list` (see docs/architecture.md): the kernels import
// nothing of maas, the model layer only the kernels, the roles never each
// other, and only the CLI reaches the CLI and the launcher.
package layering
