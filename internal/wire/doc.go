// Package wire is the data-plane and control-plane vocabulary of maas: the
// NATS subjects (all listed in subjects.go), the msgpack messages with their
// version field, and the conversion of float32 tensors to raw little-endian
// bytes (tensors never travel as msgpack arrays of floats).
//
// The flat parameter vector [0, N) is split among P parameter servers in
// contiguous key ranges (Split), and each range into chunks small enough for
// one NATS message (Chunks).
package wire
