package registry

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestServePprof(t *testing.T) {
	for _, tc := range []struct {
		path string
		code int
	}{
		{"/debug/pprof/heap", http.StatusOK},
		{"/debug/pprof/goroutine?debug=1", http.StatusOK},
		{"/debug/pprof/profile?seconds=1", http.StatusOK},
		{"/debug/pprof/nosuch", http.StatusNotFound},
	} {
		rec := httptest.NewRecorder()
		servePprof(rec, httptest.NewRequest("GET", tc.path, nil))
		if rec.Code != tc.code || tc.code == http.StatusOK && rec.Body.Len() == 0 {
			t.Errorf("GET %s: %d, %d bytes; want %d and a profile", tc.path, rec.Code, rec.Body.Len(), tc.code)
		}
	}
}
