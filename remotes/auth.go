package remotes

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/berth-dev/berth/errdefs"
)

// dockerHubKey is the key Docker keeps Docker Hub's credentials under.
const dockerHubKey = "https://index.docker.io/v1/"

// ServerKey is the key of a registry in config.json: Docker Hub's
// historical URL for docker.io, the host[:port] otherwise.
func ServerKey(host string) string {
	switch host {
	case "", "docker.io", "index.docker.io", "registry-1.docker.io", dockerHubKey:
		return dockerHubKey
	}
	return host
}

// credentials reads host's credentials from config.json, through the
// credential helper it names for host (credHelpers, credsStore) if any.
func (c *Client) credentials(host string) (authn.AuthConfig, error) {
	cf, err := config.Load(c.authDir)
	if err != nil {
		return authn.AuthConfig{}, fmt.Errorf("read credentials: %w", err)
	}
	key := ServerKey(host)
	ac, err := cf.GetCredentialsStore(key).Get(key)
	if err != nil {
		return authn.AuthConfig{}, fmt.Errorf("read credentials for %s: %w", host, err)
	}
	return authn.AuthConfig{
		Username: ac.Username, Password: ac.Password, Auth: ac.Auth,
		IdentityToken: ac.IdentityToken, RegistryToken: ac.RegistryToken,
	}, nil
}

// Login checks username and password against the registry host and, if
// they are accepted, stores them in config.json (or the credential helper
// it names), as `docker login` does.
func (c *Client) Login(ctx context.Context, host, username, password string) error {
	if host == "" {
		host = "docker.io"
	}
	reg, err := name.NewRegistry(registryHost(host), c.nameOptions(host)...)
	if err != nil {
		return errdefs.InvalidArgument("invalid registry %q: %v", host, err)
	}
	auth := authn.FromConfig(authn.AuthConfig{Username: username, Password: password})
	rt := transport.NewUserAgent(c.base, c.ua)
	// The token handshake (if the registry asks for one) checks the
	// credentials; with basic auth, a request to /v2/ does.
	tr, err := transport.NewWithContext(ctx, reg, auth, rt, []string{reg.Scope("")})
	if err != nil {
		return fmt.Errorf("login to %s: %w", host, classify(err))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, reg.Scheme()+"://"+reg.RegistryStr()+"/v2/", nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return fmt.Errorf("login to %s: %w", host, classify(err))
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		return fmt.Errorf("login to %s: %w", host, classify(err))
	}
	cf, err := config.Load(c.authDir)
	if err != nil {
		return fmt.Errorf("read credentials: %w", err)
	}
	key := ServerKey(host)
	if err := cf.GetCredentialsStore(key).Store(types.AuthConfig{Username: username, Password: password, ServerAddress: key}); err != nil {
		return fmt.Errorf("store credentials for %s: %w", host, err)
	}
	return nil
}

// Logout removes host's credentials. It reports whether there were any.
func (c *Client) Logout(ctx context.Context, host string) (bool, error) {
	cf, err := config.Load(c.authDir)
	if err != nil {
		return false, fmt.Errorf("read credentials: %w", err)
	}
	key := ServerKey(host)
	st := cf.GetCredentialsStore(key)
	ac, err := st.Get(key)
	if err != nil {
		return false, fmt.Errorf("read credentials for %s: %w", host, err)
	}
	if ac.Username == "" && ac.Password == "" && ac.Auth == "" && ac.IdentityToken == "" {
		return false, nil
	}
	if err := st.Erase(key); err != nil {
		return false, fmt.Errorf("remove credentials for %s: %w", host, err)
	}
	return true, nil
}

// registryHost is the host go-containerregistry talks to for a domain.
func registryHost(host string) string {
	if ServerKey(host) == dockerHubKey {
		return name.DefaultRegistry
	}
	return host
}
