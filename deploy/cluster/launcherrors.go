package cluster

import "errors"

// Errors of the launcher (Up, Status, Down, Upgrade). The returned errors
// wrap them with the host and process concerned; test with errors.Is.
var (
	// ErrSSH: a host could not be reached or logged in to over SSH.
	ErrSSH = errors.New("cluster: ssh")
	// ErrUnknownHostKey: a host's SSH key is not in the known_hosts file.
	ErrUnknownHostKey = errors.New("cluster: unknown ssh host key")
	// ErrHostKeyMismatch: a host's SSH key differs from its entry in the
	// known_hosts file, or is revoked there.
	ErrHostKeyMismatch = errors.New("cluster: ssh host key mismatch")
	// ErrRemote: a command run on a host failed.
	ErrRemote = errors.New("cluster: remote command failed")
	// ErrPlatform: a host's OS or architecture is not the binary's.
	ErrPlatform = errors.New("cluster: wrong platform")
	// ErrNotReady: processes did not become ready (a port, the coordinator
	// API, their registration) in time.
	ErrNotReady = errors.New("cluster: not ready")
	// ErrStillRunning: processes were still running after down.
	ErrStillRunning = errors.New("cluster: still running")
)
