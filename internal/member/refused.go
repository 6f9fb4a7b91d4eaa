package member

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// ErrCredential: the NATS server refused a member its own subjects: the
// process's NATS credential belongs to another process (a worker started
// with w-1's seed as --id w-2), so it must not run as that member.
var ErrCredential = errors.New("member: NATS refused this member's own subjects")

// refusal is the permissions violation NATS reported for one of ops on
// nc ("Subscription to" or "Publish to" a subject), or nil. The server
// reports a violation asynchronously; flush first to have it for
// everything sent so far.
func refusal(nc *nats.Conn, flush bool, ops ...string) error {
	if flush && nc.IsConnected() {
		nc.FlushTimeout(2 * time.Second)
	}
	err := nc.LastError()
	if !errors.Is(err, nats.ErrPermissionViolation) {
		return nil
	}
	for _, op := range ops {
		if strings.Contains(err.Error(), op) {
			return err
		}
	}
	return nil
}

// credentialErr says that the process runs as member id with another's
// NATS credential, and what to do.
func credentialErr(id string, err error) error {
	return fmt.Errorf("%w: member %s: %v; this process's NATS credential (--nats-seed) is not %s's: start it with %s's seed, or with the --id of the process whose seed it has", ErrCredential, id, err, id, id)
}

// op names a NATS operation on subject as the server's permissions
// violations do.
func op(kind, subject string) string { return kind + ` to "` + subject + `"` }
