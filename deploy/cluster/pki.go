package cluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"time"
)

// Lifetimes of the certificates Init makes.
const (
	CALifetime   = 10 * 365 * 24 * time.Hour
	HostLifetime = 365 * 24 * time.Hour
	// backdate starts a certificate's validity a little before its making,
	// so that a host whose clock is slightly behind accepts it.
	backdate = time.Hour
)

// authority is a CA that signs host certificates.
type authority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// newAuthority makes the cluster's CA: ECDSA P-256, valid for CALifetime,
// allowed to sign host certificates only (no intermediate CAs).
func newAuthority(cluster string, now time.Time) (*authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("cluster: CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cluster + " maas CA", Organization: []string{"maas"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(CALifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("cluster: CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("cluster: CA certificate: %w", err)
	}
	return &authority{cert: cert, key: key}, nil
}

// hostCertificate makes host h's key and certificate, signed by the CA and
// valid for HostLifetime, for both ends of a TLS connection (server and
// client authentication). Its names: the host's address (as an IP address
// or a DNS name), the host's name, localhost, 127.0.0.1 and ::1.
func (ca *authority) hostCertificate(h *Host, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: key of host %s: %w", h.Name, err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	dns := []string{h.Name, "localhost"}
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	if ip := net.ParseIP(h.Address); ip != nil {
		ips = append([]net.IP{ip}, ips...)
	} else if h.Address != h.Name {
		dns = append([]string{h.Address}, dns...)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: h.Name, Organization: []string{"maas"}},
		NotBefore:    now.Add(-backdate),
		NotAfter:     now.Add(HostLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     dns,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: certificate of host %s: %w", h.Name, err)
	}
	keyPEM, err = keyToPEM(key)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: key of host %s: %w", h.Name, err)
	}
	return certToPEM(der), keyPEM, nil
}

func (ca *authority) certPEM() []byte { return certToPEM(ca.cert.Raw) }

func (ca *authority) keyPEM() ([]byte, error) {
	b, err := keyToPEM(ca.key)
	if err != nil {
		return nil, fmt.Errorf("cluster: CA key: %w", err)
	}
	return b, nil
}

func certToPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// keyToPEM encodes a private key as PKCS #8 ("PRIVATE KEY"), which Go's
// crypto/tls and the NATS server both read.
func keyToPEM(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// randomSerial is a random 128-bit certificate serial number.
func randomSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("cluster: certificate serial: %w", err)
	}
	return n, nil
}
