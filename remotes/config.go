package remotes

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"
)

// DefaultConfigPath is berth's registry configuration file.
const DefaultConfigPath = "/etc/berth/registries.json"

// DefaultCertsDirs are where per-registry certificates are looked for,
// Docker's certs.d layout: <dir>/<host[:port]>/ca.crt, client.cert,
// client.key.
var DefaultCertsDirs = []string{"/etc/berth/certs.d", "/etc/docker/certs.d"}

// Config is berth's registry configuration. Its keys are those of Docker's
// daemon.json, so that a user's habits carry over:
//
//	{
//	  "insecure-registries": ["registry.lan:5000", "10.0.0.0/8"],
//	  "registry-mirrors": ["https://mirror.example.com"]
//	}
type Config struct {
	// InsecureRegistries may be spoken to over plain HTTP, or over TLS
	// without verifying the certificate: host[:port] entries, or CIDR
	// ranges of addresses. Loopback registries always may.
	InsecureRegistries []string `json:"insecure-registries,omitempty"`
	// Mirrors are tried, in order, before docker.io for images on Docker
	// Hub.
	Mirrors []string `json:"registry-mirrors,omitempty"`
	// CertsDirs replace DefaultCertsDirs when set.
	CertsDirs []string `json:"certs-dirs,omitempty"`
}

// LoadConfig reads the configuration file at path; a missing file is an
// empty configuration.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &Config{}, nil
	} else if err != nil {
		return nil, fmt.Errorf("read registry configuration: %w", err)
	}
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("read registry configuration %s: %w", path, err)
	}
	return &c, nil
}

// insecure reports whether the configuration lists host as insecure.
func (c *Config) insecure(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	ip := net.ParseIP(strings.Trim(h, "[]"))
	for _, e := range c.InsecureRegistries {
		e = strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(e, "http://"), "https://"), "/")
		if e == host || e == h {
			return true
		}
		if _, n, err := net.ParseCIDR(e); err == nil && ip != nil && n.Contains(ip) {
			return true
		}
	}
	return false
}
