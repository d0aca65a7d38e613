package efoproxy

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// The files MakeCertificate writes into its directory.
const (
	CertFile        = "cert.pem"          // the certificate (PEM); it is its own CA: trust it with AWS_CA_BUNDLE
	KeyFile         = "key.pem"           // its private key (PKCS #8 PEM)
	KinesisMockFile = "kinesis-mock.json" // both, as kinesis-mock's KINESIS_MOCK_CERT_PATH wants them
)

// certValidity is how long a certificate made by MakeCertificate is valid: long enough that a stack
// directory never needs a new one.
const certValidity = 10 * 365 * 24 * time.Hour

// MakeCertificate writes a self-signed certificate for 127.0.0.1 and localhost (RSA 2048, valid for ten
// years) into dir as CertFile, KeyFile and KinesisMockFile ({"server": {"key": PEM, "cert": PEM}}). When
// all three exist it leaves them and returns false; it returns true when it made them.
func MakeCertificate(dir string) (bool, error) {
	if exist(filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile), filepath.Join(dir, KinesisMockFile)) {
		return false, nil
	}
	certPEM, keyPEM, err := newCertificate(time.Now())
	if err != nil {
		return false, err
	}
	mock, err := json.Marshal(map[string]map[string]string{"server": {"key": string(keyPEM), "cert": string(certPEM)}})
	if err != nil {
		return false, fmt.Errorf("efoproxy: encode %s: %w", KinesisMockFile, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, fmt.Errorf("efoproxy: certificate directory: %w", err)
	}
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{{KeyFile, keyPEM, 0o600}, {KinesisMockFile, mock, 0o600}, {CertFile, certPEM, 0o644}} {
		if err := writeFile(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return false, err
		}
	}
	return true, nil
}

// newCertificate returns a self-signed server certificate for 127.0.0.1 and localhost and its key, in PEM.
func newCertificate(now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, fmt.Errorf("efoproxy: generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		return nil, nil, fmt.Errorf("efoproxy: serial number: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "localhost", Organization: []string{"clickfleet local stack"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(certValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("efoproxy: create certificate: %w", err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("efoproxy: encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), nil
}

// exist reports whether every path exists.
func exist(paths ...string) bool {
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			return false
		}
	}
	return true
}

// writeFile writes data to path through a temporary file renamed into place, so that a reader never
// sees half a file.
func writeFile(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("efoproxy: write %s: %w", path, err)
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr, os.Chmod(tmp.Name(), mode)); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("efoproxy: write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("efoproxy: write %s: %w", path, err)
	}
	return nil
}
