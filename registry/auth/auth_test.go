package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func writeHtpasswd(t *testing.T, users map[string]string) string {
	t.Helper()
	var b []byte
	for u, p := range users {
		h, err := bcrypt.GenerateFromPassword([]byte(p), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		b = append(b, u+":"+string(h)+"\n"...)
	}
	f := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func req(user, pass string) *http.Request {
	r := httptest.NewRequest("GET", "/v2/", nil)
	if user != "" {
		r.SetBasicAuth(user, pass)
	}
	return r
}

func status(err error) int {
	if c, ok := err.(*Challenge); ok {
		return c.Status
	}
	if err != nil {
		return -1
	}
	return 200
}

func TestBasicAuthAndRules(t *testing.T) {
	a, err := New(Config{
		Htpasswd: writeHtpasswd(t, map[string]string{"alice": "wonder", "bob": "builder"}),
		Access: []Rule{
			{Repository: "alice/*", Users: []string{"alice"}, Actions: []string{"*"}},
			{Repository: "**", Users: []string{"*"}, Actions: []string{Pull}},
			{Repository: "public/*", Users: []string{Anonymous}, Actions: []string{Pull}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	pushAlice := []Access{{"repository", "alice/app", Push}}
	pullBob := []Access{{"repository", "bob/app", Pull}}
	pullPublic := []Access{{"repository", "public/x", Pull}}
	for _, c := range []struct {
		user, pass string
		need       []Access
		want       int
	}{
		{"alice", "wonder", pushAlice, 200},
		{"alice", "wrong", pushAlice, 401},
		{"nobody", "wonder", pushAlice, 401},
		{"bob", "builder", pushAlice, 403},
		{"bob", "builder", pullBob, 200},
		{"", "", pullBob, 401},
		{"", "", pullPublic, 200},
	} {
		_, err := a.Authorize(req(c.user, c.pass), c.need)
		if got := status(err); got != c.want {
			t.Errorf("%s/%s %v: %d (%v), want %d", c.user, c.pass, c.need, got, err, c.want)
		}
	}
	_, err = a.Authorize(req("", ""), pushAlice)
	if c, ok := err.(*Challenge); !ok || c.Header != `Basic realm="berth-registry"` {
		t.Errorf("challenge: %#v", err)
	}
}

func TestHtpasswdRefusesWeakHashes(t *testing.T) {
	f := filepath.Join(t.TempDir(), "htpasswd")
	os.WriteFile(f, []byte("alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n"), 0o600)
	if _, err := New(Config{Htpasswd: f}); err == nil {
		t.Fatal("a SHA1 htpasswd entry was accepted")
	}
}

func TestTokenFlow(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalECPrivateKey(k)
	keyFile := filepath.Join(t.TempDir(), "key.pem")
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
	a, err := New(Config{
		Htpasswd: writeHtpasswd(t, map[string]string{"alice": "wonder"}),
		Token:    &TokenConfig{Realm: "https://127.0.0.1/auth/token", Service: "berth", Issuer: "berth", SigningKey: keyFile},
		Access:   []Rule{{Repository: "app", Users: []string{"alice"}, Actions: []string{Pull, Push}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	need := []Access{{"repository", "app", Pull}, {"repository", "app", Push}}
	_, err = a.Authorize(req("", ""), need)
	c, ok := err.(*Challenge)
	if !ok || c.Status != 401 || c.Header != `Bearer realm="https://127.0.0.1/auth/token",service="berth",scope="repository:app:pull,push"` {
		t.Fatalf("challenge: %#v", err)
	}

	token := func(user, pass, scope string) (int, string) {
		r := httptest.NewRequest("GET", TokenPath+"?service=berth&scope="+scope, nil)
		if user != "" {
			r.SetBasicAuth(user, pass)
		}
		w := httptest.NewRecorder()
		a.TokenHandler().ServeHTTP(w, r)
		var body struct{ Token string }
		json.NewDecoder(w.Body).Decode(&body)
		return w.Code, body.Token
	}
	if code, _ := token("alice", "bad", "repository:app:pull"); code != 401 {
		t.Fatalf("token with a bad password: %d", code)
	}
	code, tok := token("alice", "wonder", "repository:app:pull,push,delete")
	if code != 200 || tok == "" {
		t.Fatalf("token: %d %q", code, tok)
	}
	r := req("", "")
	r.Header.Set("Authorization", "Bearer "+tok)
	if user, err := a.Authorize(r, need); err != nil || user != "alice" {
		t.Fatalf("authorize with token: %q %v", user, err)
	}
	// delete was asked for but not granted.
	if _, err := a.Authorize(r, []Access{{"repository", "app", Delete}}); status(err) != 401 {
		t.Fatalf("token used beyond its grant: %v", err)
	}
	// A token for nobody grants nothing; a forged one is refused.
	_, anon := token("", "", "repository:app:pull")
	r.Header.Set("Authorization", "Bearer "+anon)
	if _, err := a.Authorize(r, need[:1]); status(err) != 401 {
		t.Fatalf("anonymous token pulled: %v", err)
	}
	r.Header.Set("Authorization", "Bearer "+tok[:len(tok)-4]+"AAAA")
	if _, err := a.Authorize(r, need[:1]); status(err) != 401 {
		t.Fatalf("forged token accepted: %v", err)
	}
}
