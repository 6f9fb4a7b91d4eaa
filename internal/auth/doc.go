// Package auth is who may call maas's HTTP APIs: the API token roles
// (admin ⊃ submit ⊃ read), a cluster's tokens as tokens.json holds them
// (only their SHA-256), and reading a request's bearer token. The
// coordinator's API, the serving endpoint and the cluster launcher share
// it; it imports nothing of maas.
package auth
