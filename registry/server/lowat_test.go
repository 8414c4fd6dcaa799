package server

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/registry/storage"
)

// slowBody hands out b in pieces of step bytes, pausing after each: a
// client that sends slower than the server receives, as skopeo does.
type slowBody struct {
	b    []byte
	step int
}

func (s *slowBody) Read(p []byte) (int, error) {
	if len(s.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), s.step)], s.b)
	s.b = s.b[n:]
	time.Sleep(100 * time.Microsecond)
	return n, nil
}

// TestLowatBodies pushes blobs larger than lowatMinBody, slowly, to a
// server that knows its connections (WithConn), in every way a body comes
// (PATCH, PATCH with Content-Range, PUT, monolithic POST), each followed by
// a request on the same connection: the low mark must let every body end
// and be back at 1 for what follows.
func TestLowatBodies(t *testing.T) {
	root := t.TempDir()
	s, err := storage.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(New(s, Options{}))
	srv.Config.ConnContext = WithConn
	srv.Start()
	t.Cleanup(func() { srv.Close(); s.Close() })
	c := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
	defer c.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	do := func(method, path string, body []byte, want int, hdr ...string) *http.Response {
		t.Helper()
		var r io.Reader
		if body != nil {
			r = &slowBody{b: body, step: 32 << 10}
		}
		req, err := http.NewRequestWithContext(ctx, method, srv.URL+path, r)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = int64(len(body))
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %s, want %d: %s", method, path, resp.Status, want, b)
		}
		return resp
	}
	// Sizes around the marks: just above lowatMinBody, and one that ends
	// inside lowatMargin of a multiple of lowatMax.
	for _, size := range []int{lowatMinBody + 1, 3*lowatMax + lowatMargin/2, 5 << 20} {
		blob := make([]byte, size)
		for i := range blob {
			blob[i] = byte(i*31 + size)
		}
		d := digest.FromBytes(blob)
		n := strconv.Itoa(size)

		// Monolithic POST.
		do("POST", "/v2/mono"+n+"/blobs/uploads/?digest="+d.String(), blob, 201)
		do("HEAD", "/v2/mono"+n+"/blobs/"+d.String(), nil, 200)

		// POST, PATCH in two chunks (the second with Content-Range), PUT.
		loc := do("POST", "/v2/chunks"+n+"/blobs/uploads/", nil, 202).Header.Get("Location")
		half := size / 2
		loc = do("PATCH", loc, blob[:half], 202, "Content-Type", "application/octet-stream").Header.Get("Location")
		loc = do("PATCH", loc, blob[half:], 202, "Content-Type", "application/octet-stream",
			"Content-Range", strconv.Itoa(half)+"-"+strconv.Itoa(size-1)).Header.Get("Location")
		do("PUT", loc+"?digest="+d.String(), nil, 201)
		do("HEAD", "/v2/chunks"+n+"/blobs/"+d.String(), nil, 200)

		// POST, then the whole blob with the PUT.
		loc = do("POST", "/v2/put"+n+"/blobs/uploads/", nil, 202).Header.Get("Location")
		do("PUT", loc+"?digest="+d.String(), blob, 201, "Content-Type", "application/octet-stream")
		resp := do("GET", "/v2/put"+n+"/blobs/"+d.String(), nil, 200)
		if resp.ContentLength != int64(size) {
			t.Fatalf("GET: Content-Length %d, want %d", resp.ContentLength, size)
		}
	}
	// A body that ends early (the client gives up) leaves the connection
	// closed, and the server serves the next one.
	req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/v2/short/blobs/uploads/?digest="+digest.FromString("x").String(),
		io.MultiReader(bytes.NewReader(make([]byte, lowatMinBody)), errReader{}))
	req.ContentLength = 4 * lowatMinBody
	if resp, err := c.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("a body that fails reached the server whole: %s", resp.Status)
	}
	do("GET", "/v2/", nil, 200)
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }
