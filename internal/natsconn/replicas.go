package natsconn

import "github.com/nats-io/nats.go"

// Replicas is how many copies of a JetStream bucket maas asks for on the
// servers nc knows of (those it was given and those they told it about):
// three where there are three or more, so that a bucket outlives the loss
// or restart of any one server (a rolling `maas cluster upgrade`), else
// one.
func Replicas(nc *nats.Conn) int {
	if len(nc.Servers()) >= 3 {
		return 3
	}
	return 1
}
