// Package s3test runs a real S3-compatible server for tests: versitygw (Apache-2.0) with its
// POSIX backend, built once by hack/setup-s3.sh into the cache, started here on loopback with
// TLS from a throwaway CA. The tests skip when the binary is not there.
package s3test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fragile-operator/fragile-operator/pkg/storage"
)

// Server is a running versitygw.
type Server struct {
	Endpoint  string // https://127.0.0.1:PORT
	AccessKey string
	SecretKey string
	CA        []byte // PEM of the CA that signed the server's certificate
	Root      string // the POSIX backend's directory: bucket B, key K is Root/B/K
	cmd       *exec.Cmd
}

// Binary is the versitygw binary: $FRAGILE_S3_SERVER, else where hack/setup-s3.sh caches it.
func Binary() string {
	if b := os.Getenv("FRAGILE_S3_SERVER"); b != "" {
		return b
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache")
	}
	return filepath.Join(cache, "fragile-operator", "versitygw", "v1.8.0", "versitygw")
}

// Start runs a server for the test and stops it at cleanup. It skips the test when the binary
// has not been built and FRAGILE_S3_SERVER is unset; when FRAGILE_S3_SERVER names a binary
// that is not there (CI sets it), the test fails instead of passing without its server.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Binary()
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("FRAGILE_S3_SERVER") != "" {
			t.Fatalf("FRAGILE_S3_SERVER=%s: %v", bin, err)
		}
		t.Skipf("no S3 server at %s and FRAGILE_S3_SERVER is unset: run eval \"$(hack/setup-s3.sh)\"", bin)
	}
	dir := t.TempDir()
	s := &Server{AccessKey: "fragile-test", SecretKey: "fragile-test-secret-" + strconv.Itoa(os.Getpid()), Root: filepath.Join(dir, "data")}
	if err := os.MkdirAll(s.Root, 0o755); err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	var err error
	if s.CA, err = writeTLS(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	port := FreePort(t)
	s.Endpoint = "https://127.0.0.1:" + port
	log, err := os.Create(filepath.Join(dir, "versitygw.log"))
	if err != nil {
		t.Fatal(err)
	}
	s.cmd = exec.Command(bin, "--access", s.AccessKey, "--secret", s.SecretKey, "--port", "127.0.0.1:"+port,
		"--cert", certFile, "--key", keyFile, "--quiet", "posix", s.Root)
	s.cmd.Stdout, s.cmd.Stderr = log, log
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the test binary
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = s.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = s.cmd.Process.Kill()
			<-done
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(log.Name())
			t.Fatalf("versitygw did not listen on %s within 30s:\n%s", port, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return s
}

// Config is a storage configuration for this server with its CA.
func (s *Server) Config() storage.S3Config {
	u, _ := url.Parse(s.Endpoint)
	return storage.S3Config{Endpoint: u, AccessKeyID: s.AccessKey, SecretAccessKey: s.SecretKey, Region: "us-east-1", CA: s.CA, Source: "s3test"}
}

// SecretData is the credentials Secret's data for this server, as the operator documents it.
func (s *Server) SecretData() map[string][]byte {
	return map[string][]byte{
		storage.KeyEndpoint:        []byte(s.Endpoint),
		storage.KeyAccessKeyID:     []byte(s.AccessKey),
		storage.KeySecretAccessKey: []byte(s.SecretKey),
		storage.KeyCA:              s.CA,
	}
}

// MakeBucket creates a bucket.
func (s *Server) MakeBucket(t testing.TB, name string) {
	t.Helper()
	if err := storage.MakeBucket(context.Background(), s.Config(), name); err != nil {
		t.Fatalf("creating bucket %s: %v", name, err)
	}
}

// writeTLS writes a server certificate for 127.0.0.1 and localhost, signed by a fresh CA, and
// returns the CA's PEM.
func writeTLS(certFile, keyFile string) ([]byte, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fragile s3test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), nil
}

// FreePort is a TCP port free on 127.0.0.1 now, for servers a test starts.
func FreePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// String describes the server for logs.
func (s *Server) String() string {
	return fmt.Sprintf("versitygw %s (root %s)", s.Endpoint, strings.TrimSuffix(s.Root, "/"))
}
