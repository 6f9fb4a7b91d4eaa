// Package netemu emulates hosts on one Linux machine: each host is a
// network namespace with one veth link to a shared bridge, the link's rate
// shaped with tc (a token bucket on each direction), so that processes
// started in a host's namespace talk to the others over a network of a
// known rate. It measures each link with a TCP transfer between
// namespaces, counts the bytes each link carries, and runs an OpenSSH
// server in a host so that the launcher can reach it as it reaches a real
// machine.
//
// The kernel's netem (delay, jitter, loss) is not assumed: links differ
// from a datacenter network in rate only, and their round trip is the
// veth's (about 0.1 ms). It needs root and iproute2 (ip, tc).
package netemu

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// ErrUnavailable: this machine cannot emulate hosts (not root, no ip or
// tc, or namespaces refused); the message says which.
var ErrUnavailable = errors.New("netemu: cannot emulate hosts here")

// Host is one emulated host.
type Host struct {
	// Name is h1, h2, …; NS its network namespace; Addr its IPv4 address.
	Name, NS, Addr string
	// outer is the veth end on the bridge (its egress goes into the
	// host), inner the end inside the namespace (egress leaves the host).
	outer, inner string
}

// Net is a set of emulated hosts on one bridge.
type Net struct {
	// Bridge is the bridge's name; Gateway its address, through which
	// the machine's own namespace reaches the hosts.
	Bridge, Gateway string
	Hosts           []Host
	// Rate is the shaped rate of every link in bits/s (0: unshaped).
	Rate float64
}

// Available reports whether hosts can be emulated here, and if not, why.
func Available() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: network namespaces need root", ErrUnavailable)
	}
	for _, tool := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%w: no %s (apt-get install iproute2)", ErrUnavailable, tool)
		}
	}
	return nil
}

// New makes n hosts on a new bridge, unshaped. Close removes them.
func New(n int) (*Net, error) {
	if n < 1 || n > 200 {
		return nil, fmt.Errorf("netemu: %d hosts; from 1 to 200", n)
	}
	if err := Available(); err != nil {
		return nil, err
	}
	var b [2]byte
	var subnet string
	for try := 0; ; try++ {
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		subnet = fmt.Sprintf("10.%d.%d", 180+int(b[0])%60, int(b[1]))
		if !inUse(subnet + ".1") {
			break
		}
		if try == 20 {
			return nil, fmt.Errorf("%w: no free 10.x.y.0/24 subnet for the hosts", ErrUnavailable)
		}
	}
	tag := hex.EncodeToString(b[:])
	nt := &Net{Bridge: "neb" + tag, Gateway: subnet + ".1"}
	if out, err := exec.Command("ip", "link", "add", nt.Bridge, "type", "bridge").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("%w: ip link add type bridge: %v: %s", ErrUnavailable, err, strings.TrimSpace(string(out)))
	}
	ok := false
	defer func() {
		if !ok {
			nt.Close()
		}
	}()
	if err := ip("addr", "add", nt.Gateway+"/24", "dev", nt.Bridge); err != nil {
		return nil, err
	}
	if err := ip("link", "set", nt.Bridge, "up"); err != nil {
		return nil, err
	}
	for i := 1; i <= n; i++ {
		h := Host{Name: fmt.Sprintf("h%d", i), NS: fmt.Sprintf("ne%s-%d", tag, i), Addr: fmt.Sprintf("%s.%d", subnet, 10+i),
			outer: fmt.Sprintf("nev%s%d", tag, i), inner: fmt.Sprintf("nep%s%d", tag, i)}
		if out, err := exec.Command("ip", "netns", "add", h.NS).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("%w: ip netns add: %v: %s", ErrUnavailable, err, strings.TrimSpace(string(out)))
		}
		nt.Hosts = append(nt.Hosts, h)
		for _, args := range [][]string{
			{"link", "add", h.outer, "type", "veth", "peer", "name", h.inner},
			{"link", "set", h.inner, "netns", h.NS},
			{"link", "set", h.outer, "master", nt.Bridge, "up"},
			{"-n", h.NS, "addr", "add", h.Addr + "/24", "dev", h.inner},
			{"-n", h.NS, "link", "set", h.inner, "up"},
			{"-n", h.NS, "link", "set", "lo", "up"},
		} {
			if err := ip(args...); err != nil {
				return nil, err
			}
		}
	}
	ok = true
	return nt, nil
}

// inUse reports whether addr falls in a network of one of this machine's
// interfaces (another set of hosts, a real network).
func inUse(addr string) bool {
	a := net.ParseIP(addr)
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, x := range addrs {
		if n, ok := x.(*net.IPNet); ok && n.Contains(a) {
			return true
		}
	}
	return false
}

func ip(args ...string) error {
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("netemu: ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Close removes the hosts (their namespaces, and so every process's
// sockets in them) and the bridge.
func (nt *Net) Close() error {
	var errs []error
	for _, h := range nt.Hosts {
		if out, err := exec.Command("ip", "netns", "del", h.NS).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("netemu: ip netns del %s: %v: %s", h.NS, err, strings.TrimSpace(string(out))))
		}
		_ = exec.Command("ip", "link", "del", h.outer).Run() // gone with the namespace's end already, usually
	}
	nt.Hosts = nil
	if out, err := exec.Command("ip", "link", "del", nt.Bridge).CombinedOutput(); err != nil {
		errs = append(errs, fmt.Errorf("netemu: ip link del %s: %v: %s", nt.Bridge, err, strings.TrimSpace(string(out))))
	}
	return errors.Join(errs...)
}

// Shape sets every link's rate to bits/s in each direction (a token
// bucket on the egress of both veth ends); 0 removes the shaping.
func (nt *Net) Shape(bits float64) error {
	if bits < 0 || math.IsNaN(bits) || math.IsInf(bits, 0) {
		return fmt.Errorf("netemu: link rate %g bit/s", bits)
	}
	for _, h := range nt.Hosts {
		for _, dev := range []struct{ ns, name string }{{"", h.outer}, {h.NS, h.inner}} {
			if err := tbf(dev.ns, dev.name, bits); err != nil {
				return err
			}
		}
	}
	nt.Rate = bits
	return nil
}

// tbf puts a token bucket of rate bits/s on dev's egress (in namespace
// ns, "" for the machine's), or removes it for 0. The bucket holds 4 ms of
// traffic (at least 64 KiB, for segmentation-offloaded packets) and the
// queue up to 50 ms.
func tbf(ns, dev string, bits float64) error {
	var args []string
	if ns != "" {
		args = append(args, "-n", ns)
	}
	if bits == 0 {
		args = append(args, "qdisc", "del", "dev", dev, "root")
		out, err := exec.Command("tc", args...).CombinedOutput()
		if err != nil && !strings.Contains(string(out), "No such file") && !strings.Contains(string(out), "Cannot delete qdisc with handle of zero") {
			return fmt.Errorf("netemu: tc %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	burst := max(64<<10, int(bits/8*0.004))
	args = append(args, "qdisc", "replace", "dev", dev, "root", "tbf",
		"rate", strconv.FormatFloat(bits, 'f', 0, 64)+"bit", "burst", strconv.Itoa(burst), "latency", "50ms")
	if out, err := exec.Command("tc", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("netemu: tc %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Command returns cmd to run in host i's namespace (ip netns exec).
func (nt *Net) Command(i int, name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", nt.Hosts[i].NS, name}, args...)...)
}

// LinkBytes returns the bytes host i's link has carried into the host
// and out of it since it was made.
func (nt *Net) LinkBytes(i int) (in, out uint64, err error) {
	read := func(stat string) (uint64, error) {
		b, err := os.ReadFile("/sys/class/net/" + nt.Hosts[i].outer + "/statistics/" + stat)
		if err != nil {
			return 0, fmt.Errorf("netemu: %w", err)
		}
		return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	}
	// The bridge side transmits what goes into the host and receives
	// what leaves it.
	if in, err = read("tx_bytes"); err != nil {
		return 0, 0, err
	}
	out, err = read("rx_bytes")
	return in, out, err
}
