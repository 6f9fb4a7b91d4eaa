// Package natsconn connects a maas process to NATS the way every role
// does: reconnecting for ever, starting before its server if need be,
// and failing at once, with what to do, when a secured server refuses
// the process (no or a wrong nkey seed, no TLS where TLS is required, a
// certificate of another CA, no client certificate where one is wanted).
//
// Every connection's error handler counts the permissions violations the
// server reports (a publish or subscription the process's NATS user may
// not make: the server drops it) in maas_nats_permission_violations_total
// and logs each at warn.
package natsconn
