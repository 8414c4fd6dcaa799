package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/berth-dev/berth/errdefs"
)

// TokenPath is where the registry serves its own token endpoint.
const TokenPath = "/auth/token"

// TokenConfig configures bearer tokens (Docker's token flow): clients get a
// signed JWT from the realm and present it to the registry.
type TokenConfig struct {
	// Realm is the URL clients get tokens from. With SigningKey set it is
	// usually this registry's own https://host:port/auth/token.
	Realm string `json:"realm"`
	// Service names this registry in tokens (their audience).
	Service string `json:"service"`
	// Issuer must be the tokens' issuer.
	Issuer string `json:"issuer"`
	// RootCertBundle is a PEM file of certificates whose keys sign the
	// tokens of an external token server.
	RootCertBundle string `json:"rootCertBundle,omitempty"`
	// SigningKey is a PEM private key (EC P-256 or RSA): the registry
	// issues tokens itself at TokenPath, to the users of the htpasswd
	// file, with the permissions of the access rules.
	SigningKey string `json:"signingKey,omitempty"`
	// ExpirySeconds is the lifetime of tokens the registry issues
	// (default 300).
	ExpirySeconds int `json:"expirySeconds,omitempty"`
}

type tokenAuth struct {
	cfg  TokenConfig
	keys []crypto.PublicKey // keys that verify tokens
	key  crypto.Signer      // key that signs the tokens we issue, or nil
}

func newTokenAuth(cfg TokenConfig) (*tokenAuth, error) {
	if cfg.Realm == "" || cfg.Service == "" || cfg.Issuer == "" {
		return nil, errdefs.InvalidArgument("auth token: realm, service and issuer are required")
	}
	if cfg.ExpirySeconds <= 0 {
		cfg.ExpirySeconds = 300
	}
	t := &tokenAuth{cfg: cfg}
	if cfg.RootCertBundle != "" {
		b, err := os.ReadFile(cfg.RootCertBundle)
		if err != nil {
			return nil, fmt.Errorf("auth token: %w", err)
		}
		for {
			var blk *pem.Block
			blk, b = pem.Decode(b)
			if blk == nil {
				break
			}
			if blk.Type != "CERTIFICATE" {
				continue
			}
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				return nil, errdefs.InvalidArgument("auth token: %s: %v", cfg.RootCertBundle, err)
			}
			t.keys = append(t.keys, c.PublicKey)
		}
	}
	if cfg.SigningKey != "" {
		k, err := loadSigner(cfg.SigningKey)
		if err != nil {
			return nil, err
		}
		t.key = k
		t.keys = append(t.keys, k.Public())
	}
	if len(t.keys) == 0 {
		return nil, errdefs.InvalidArgument("auth token: no rootCertBundle or signingKey to verify tokens with")
	}
	return t, nil
}

func loadSigner(file string) (crypto.Signer, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("auth token signing key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errdefs.InvalidArgument("auth token signing key %s: no PEM block", file)
	}
	var k any
	switch blk.Type {
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(blk.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
	default:
		k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	}
	if err != nil {
		return nil, errdefs.InvalidArgument("auth token signing key %s: %v", file, err)
	}
	switch k := k.(type) {
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, errdefs.InvalidArgument("auth token signing key %s: want an EC P-256 key", file)
		}
		return k, nil
	case *rsa.PrivateKey:
		return k, nil
	}
	return nil, errdefs.InvalidArgument("auth token signing key %s: want an EC P-256 or RSA key", file)
}

// claims are the JWT claims of a registry token.
type claims struct {
	Issuer    string          `json:"iss"`
	Subject   string          `json:"sub"`
	Audience  json.RawMessage `json:"aud"`
	Expiry    int64           `json:"exp"`
	NotBefore int64           `json:"nbf"`
	IssuedAt  int64           `json:"iat"`
	ID        string          `json:"jti"`
	Access    []grant         `json:"access"`
}

type grant struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

func (c *claims) hasAudience(aud string) bool {
	var one string
	if json.Unmarshal(c.Audience, &one) == nil {
		return one == aud
	}
	var many []string
	return json.Unmarshal(c.Audience, &many) == nil && slices.Contains(many, aud)
}

func (c *claims) allows(a Access) bool {
	for _, g := range c.Access {
		if g.Type == a.Type && g.Name == a.Name && (slices.Contains(g.Actions, a.Action) || slices.Contains(g.Actions, "*")) {
			return true
		}
	}
	return false
}

var b64 = base64.RawURLEncoding

// sign makes a JWT of c with key.
func sign(key crypto.Signer, c claims) (string, error) {
	alg := "ES256"
	if _, ok := key.(*rsa.PrivateKey); ok {
		alg = "RS256"
	}
	h, _ := json.Marshal(map[string]string{"alg": alg, "typ": "JWT"})
	p, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	input := b64.EncodeToString(h) + "." + b64.EncodeToString(p)
	sum := sha256.Sum256([]byte(input))
	var sig []byte
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rand.Reader, k, sum[:])
		if err != nil {
			return "", err
		}
		sig = make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
	default:
		sig, err = key.Sign(rand.Reader, sum[:], crypto.SHA256)
		if err != nil {
			return "", err
		}
	}
	return input + "." + b64.EncodeToString(sig), nil
}

// verify checks a JWT's signature against keys and returns its claims.
func verify(token string, keys []crypto.PublicKey) (*claims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, errors.New("malformed token")
	}
	hb, err := b64.DecodeString(parts[0])
	if err != nil {
		return nil, errors.New("malformed token header")
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if err := json.Unmarshal(hb, &h); err != nil {
		return nil, errors.New("malformed token header")
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil {
		return nil, errors.New("malformed token signature")
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	ok := false
	for _, k := range keys {
		switch k := k.(type) {
		case *ecdsa.PublicKey:
			if h.Alg == "ES256" && len(sig) == 64 {
				ok = ecdsa.Verify(k, sum[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:]))
			}
		case *rsa.PublicKey:
			if h.Alg == "RS256" {
				ok = rsa.VerifyPKCS1v15(k, crypto.SHA256, sum[:], sig) == nil
			}
		}
		if ok {
			break
		}
	}
	if !ok {
		return nil, errors.New("token signature does not verify")
	}
	pb, err := b64.DecodeString(parts[1])
	if err != nil {
		return nil, errors.New("malformed token claims")
	}
	var c claims
	if err := json.Unmarshal(pb, &c); err != nil {
		return nil, errors.New("malformed token claims")
	}
	return &c, nil
}

func (a *Auth) bearerChallenge(need []Access, tokenErr string) string {
	v := fmt.Sprintf("Bearer realm=%q,service=%q", a.token.cfg.Realm, a.token.cfg.Service)
	if len(need) > 0 {
		v += fmt.Sprintf(",scope=%q", Scope(need))
	}
	if tokenErr != "" {
		v += fmt.Sprintf(",error=%q", tokenErr)
	}
	return v
}

func (a *Auth) authorizeBearer(r *http.Request, need []Access) (string, error) {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		if len(need) == 0 && a.anonymousAllowed() {
			return Anonymous, nil
		}
		return "", &Challenge{Status: http.StatusUnauthorized, Header: a.bearerChallenge(need, ""), Reason: "authentication required"}
	}
	c, err := verify(strings.TrimSpace(tok), a.token.keys)
	if err != nil {
		return "", &Challenge{Status: http.StatusUnauthorized, Header: a.bearerChallenge(need, "invalid_token"), Reason: err.Error()}
	}
	now := time.Now().Unix()
	const leeway = 60
	if c.Issuer != a.token.cfg.Issuer || !c.hasAudience(a.token.cfg.Service) || c.Expiry+leeway < now || c.NotBefore-leeway > now {
		return "", &Challenge{Status: http.StatusUnauthorized, Header: a.bearerChallenge(need, "invalid_token"), Reason: "token expired or not meant for this registry"}
	}
	for _, acc := range need {
		if !c.allows(acc) {
			return "", &Challenge{Status: http.StatusUnauthorized, Header: a.bearerChallenge(need, "insufficient_scope"), Reason: fmt.Sprintf("token does not grant %s", acc)}
		}
	}
	return c.Subject, nil
}

// serveToken issues tokens: GET TokenPath?service=...&scope=... with
// optional basic auth, granting the requested actions the user may do.
func (a *Auth) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	user := Anonymous
	if u, p, ok := r.BasicAuth(); ok {
		if !a.checkPassword(u, p) {
			w.Header().Set("WWW-Authenticate", a.basicChallenge())
			http.Error(w, `{"details":"invalid username or password"}`, http.StatusUnauthorized)
			return
		}
		user = u
	}
	q := r.URL.Query()
	if s := q.Get("service"); s != "" && s != a.token.cfg.Service {
		http.Error(w, `{"details":"unknown service"}`, http.StatusBadRequest)
		return
	}
	var grants []grant
	for _, scope := range q["scope"] {
		for sc := range strings.FieldsSeq(scope) {
			typ, rest, ok1 := strings.Cut(sc, ":")
			i := strings.LastIndexByte(rest, ':')
			if !ok1 || i < 0 {
				continue
			}
			g := grant{Type: typ, Name: rest[:i], Actions: []string{}}
			for act := range strings.SplitSeq(rest[i+1:], ",") {
				if a.allowed(user, Access{Type: typ, Name: g.Name, Action: act}) {
					g.Actions = append(g.Actions, act)
				}
			}
			grants = append(grants, g)
		}
	}
	now := time.Now()
	var jti [12]byte
	rand.Read(jti[:])
	aud, _ := json.Marshal(a.token.cfg.Service)
	tok, err := sign(a.token.key, claims{
		Issuer: a.token.cfg.Issuer, Subject: user, Audience: aud,
		Expiry: now.Add(time.Duration(a.token.cfg.ExpirySeconds) * time.Second).Unix(), NotBefore: now.Unix(), IssuedAt: now.Unix(),
		ID: b64.EncodeToString(jti[:]), Access: grants,
	})
	if err != nil {
		http.Error(w, "cannot sign token", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"token": tok, "access_token": tok, "expires_in": a.token.cfg.ExpirySeconds, "issued_at": now.UTC().Format(time.RFC3339),
	})
}
