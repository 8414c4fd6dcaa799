package server

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/registry/storage"
)

// Manifest media types the registry accepts.
const (
	mtOCIManifest    = "application/vnd.oci.image.manifest.v1+json"
	mtOCIIndex       = "application/vnd.oci.image.index.v1+json"
	mtDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	mtDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
)

func isIndex(mt string) bool { return mt == mtOCIIndex || mt == mtDockerList }

var errManifestUnknown = newError(http.StatusNotFound, codeManifestUnknown, "manifest unknown to registry")

type descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	URLs         []string          `json:"urls,omitempty"`
	Data         *string           `json:"data,omitempty"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

type manifestDoc struct {
	SchemaVersion *int              `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType"`
	Config        *descriptor       `json:"config"`
	Layers        []descriptor      `json:"layers"`
	Manifests     []descriptor      `json:"manifests"`
	Subject       *descriptor       `json:"subject"`
	Annotations   map[string]string `json:"annotations"`
}

// manifest serves GET, HEAD, PUT and DELETE on /v2/<name>/manifests/<ref>.
func (h *Handler) manifest(w http.ResponseWriter, r *http.Request, rt route) {
	ctx := r.Context()
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		var m storage.Manifest
		var size int64
		var upErr error
		if h.opts.Cache.Covers(rt.name) {
			upErr = h.opts.Cache.Manifest(ctx, rt.name, rt.ref)
		}
		var err error
		if r.Method == http.MethodHead {
			m, size, err = h.store.StatManifest(ctx, rt.name, rt.ref)
		} else {
			m, err = h.store.GetManifest(ctx, rt.name, rt.ref)
			size = int64(len(m.Content))
		}
		if err != nil {
			// A reference that cannot name anything names nothing here: 404.
			aerr := classify(err, errManifestUnknown)
			if errdefs.IsInvalidArgument(err) {
				aerr = &apiError{status: http.StatusNotFound, code: codeManifestUnknown, message: err.Error()}
			}
			if upErr != nil {
				aerr = classify(upErr, errManifestUnknown)
			}
			writeError(w, aerr)
			return
		}
		hd := w.Header()
		hd.Set("Content-Type", m.MediaType)
		hd.Set("Content-Length", strconv.FormatInt(size, 10))
		hd.Set("Docker-Content-Digest", m.Digest.String())
		hd.Set("Etag", `"`+m.Digest.String()+`"`)
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			w.Write(m.Content)
		}
	case http.MethodPut:
		h.putManifest(w, r, rt)
	case http.MethodDelete:
		var err error
		if strings.Contains(rt.ref, ":") {
			d, aerr := parseDigest(rt.ref)
			if aerr != nil {
				writeError(w, aerr)
				return
			}
			err = h.store.DeleteManifest(ctx, rt.name, d)
		} else {
			err = h.store.DeleteTag(ctx, rt.name, rt.ref)
		}
		if err != nil {
			aerr := classify(err, errManifestUnknown)
			if errdefs.IsInvalidArgument(err) {
				aerr = newError(http.StatusBadRequest, codeManifestInvalid, err.Error())
			}
			writeError(w, aerr)
			return
		}
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusAccepted)
	default:
		methodNotAllowed(w)
	}
}

func (h *Handler) putManifest(w http.ResponseWriter, r *http.Request, rt route) {
	ctx := r.Context()
	invalid := func(format string, args ...any) {
		writeError(w, newError(http.StatusBadRequest, codeManifestInvalid, fmt.Sprintf(format, args...)))
	}
	limit := h.opts.MaxManifestSize
	if r.ContentLength > limit {
		writeError(w, newError(http.StatusRequestEntityTooLarge, codeSizeInvalid, fmt.Sprintf("manifest larger than %d bytes", limit)))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		writeError(w, bodyError(err))
		return
	}
	if int64(len(body)) > limit {
		writeError(w, newError(http.StatusRequestEntityTooLarge, codeSizeInvalid, fmt.Sprintf("manifest larger than %d bytes", limit)))
		return
	}

	// The digest: named by the reference, or sha256 of the bytes for a tag.
	var d digest.Digest
	var tags []string
	if strings.Contains(rt.ref, ":") {
		var aerr *apiError
		if d, aerr = parseDigest(rt.ref); aerr != nil {
			writeError(w, aerr)
			return
		}
		if got := d.Algorithm().FromBytes(body); got != d {
			writeError(w, newError(http.StatusBadRequest, codeDigestInvalid, fmt.Sprintf("manifest digest is %s, not %s", got, d)))
			return
		}
		tags = r.URL.Query()["tag"]
	} else {
		if !storage.ValidTag(rt.ref) {
			invalid("invalid tag %q", rt.ref)
			return
		}
		d = digest.Canonical.FromBytes(body)
		tags = []string{rt.ref}
	}
	for _, t := range tags {
		if !storage.ValidTag(t) {
			invalid("invalid tag %q", t)
			return
		}
	}

	var doc manifestDoc
	if t := bytes.TrimSpace(body); len(t) == 0 || t[0] != '{' {
		invalid("manifest is not a JSON object")
		return
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		invalid("manifest is not valid JSON: %v", err)
		return
	}
	ct := r.Header.Get("Content-Type")
	if ct != "" {
		if parsed, _, err := mime.ParseMediaType(ct); err == nil {
			ct = parsed
		}
	}
	mt := doc.MediaType
	switch {
	case mt == "" && ct != "":
		mt = ct
	case mt == "" && doc.Manifests != nil:
		mt = mtOCIIndex
	case mt == "" && doc.Config != nil:
		mt = mtOCIManifest
	case mt != "" && ct != "" && ct != mt:
		invalid("Content-Type %q does not match the manifest's mediaType %q", ct, mt)
		return
	}
	switch mt {
	case mtOCIManifest, mtDockerManifest, mtOCIIndex, mtDockerList:
	default:
		invalid("unsupported manifest media type %q", mt)
		return
	}
	if doc.SchemaVersion == nil || *doc.SchemaVersion != 2 {
		invalid("schemaVersion must be 2")
		return
	}

	req := storage.PutRequest{Manifest: storage.Manifest{Digest: d, MediaType: mt, Content: body}, Tags: tags}
	if isIndex(mt) {
		if doc.Config != nil || doc.Layers != nil {
			invalid("an index has no config or layers")
			return
		}
		for _, m := range doc.Manifests {
			md, msg := checkDescriptor(m)
			if msg != "" {
				invalid("manifests: %s", msg)
				return
			}
			req.Manifests = append(req.Manifests, md)
		}
	} else {
		if doc.Config == nil {
			invalid("an image manifest needs a config")
			return
		}
		if doc.Manifests != nil {
			invalid("an image manifest has no manifests list")
			return
		}
		cd, msg := checkDescriptor(*doc.Config)
		if msg != "" {
			invalid("config: %s", msg)
			return
		}
		req.Blobs = append(req.Blobs, cd)
		for _, l := range doc.Layers {
			ld, msg := checkDescriptor(l)
			if msg != "" {
				invalid("layers: %s", msg)
				return
			}
			if nonDistributable(l.MediaType) {
				continue // pushed elsewhere, or never
			}
			req.Blobs = append(req.Blobs, ld)
		}
	}
	if doc.Subject != nil {
		sd, msg := checkDescriptor(*doc.Subject)
		if msg != "" {
			invalid("subject: %s", msg)
			return
		}
		req.Subject = sd
		at := doc.ArtifactType
		if at == "" && doc.Config != nil && !isIndex(mt) {
			at = doc.Config.MediaType
		}
		req.Descriptor, _ = json.Marshal(descriptor{
			MediaType: mt, Digest: d.String(), Size: int64(len(body)),
			ArtifactType: at, Annotations: doc.Annotations,
		})
	}
	if err := h.store.PutManifest(ctx, rt.name, req); err != nil {
		if errdefs.IsNotFound(err) {
			writeError(w, &apiError{status: http.StatusBadRequest, code: codeManifestBlobUnknown, message: err.Error()})
			return
		}
		writeError(w, classify(err, nil))
		return
	}
	hd := w.Header()
	hd.Set("Location", "/v2/"+rt.name+"/manifests/"+d.String())
	hd.Set("Docker-Content-Digest", d.String())
	if req.Subject != "" {
		hd.Set("OCI-Subject", req.Subject.String())
	}
	if strings.Contains(rt.ref, ":") && len(tags) > 0 {
		hd.Set("OCI-Tag", strings.Join(tags, ", "))
	}
	hd.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

// checkDescriptor validates a descriptor, returning its digest or what is wrong.
func checkDescriptor(desc descriptor) (digest.Digest, string) {
	d, err := storage.ParseDigest(desc.Digest)
	if err != nil {
		return "", err.Error()
	}
	if desc.Size < 0 {
		return "", fmt.Sprintf("negative size for %s", d)
	}
	if desc.MediaType == "" {
		return "", fmt.Sprintf("no mediaType for %s", d)
	}
	if desc.Data != nil {
		b, err := base64.StdEncoding.DecodeString(*desc.Data)
		if err != nil {
			return "", fmt.Sprintf("data of %s is not base64: %v", d, err)
		}
		if int64(len(b)) != desc.Size || d.Algorithm().FromBytes(b) != d {
			return "", fmt.Sprintf("data of %s does not match its digest or size", d)
		}
	}
	return d, ""
}

func nonDistributable(mt string) bool {
	return strings.Contains(mt, ".nondistributable.") || strings.Contains(mt, ".foreign.")
}

// pageParams parses the n and last query parameters of a listing.
func pageParams(r *http.Request) (n int, last string, aerr *apiError) {
	q := r.URL.Query()
	n = -1
	if s := q.Get("n"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 {
			return 0, "", newError(http.StatusBadRequest, "PAGINATION_NUMBER_INVALID", "invalid n "+strconv.Quote(s))
		}
		n = v
	}
	return n, q.Get("last"), nil
}

// page applies n and last to a sorted list, and sets the Link header when
// more follow.
func page(w http.ResponseWriter, r *http.Request, all []string, n int, last string) []string {
	start := 0
	if last != "" {
		for start < len(all) && all[start] <= last {
			start++
		}
	}
	out := all[start:]
	if n >= 0 && n < len(out) {
		out = out[:n]
		if n > 0 {
			q := url.Values{}
			q.Set("n", strconv.Itoa(n))
			q.Set("last", out[len(out)-1])
			w.Header().Set("Link", fmt.Sprintf(`<%s?%s>; rel="next"`, r.URL.Path, q.Encode()))
		}
	}
	if out == nil {
		out = []string{}
	}
	return out
}

func writeJSON(w http.ResponseWriter, r *http.Request, contentType string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, classify(err, nil))
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(b)
	}
}

// tags serves GET /v2/<name>/tags/list.
func (h *Handler) tags(w http.ResponseWriter, r *http.Request, rt route) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w)
		return
	}
	n, last, aerr := pageParams(r)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	if !h.store.RepositoryExists(r.Context(), rt.name) {
		writeError(w, newError(http.StatusNotFound, codeNameUnknown, "repository name not known to registry"))
		return
	}
	if h.opts.Cache.Covers(rt.name) {
		all, err := h.opts.Cache.Tags(r.Context(), rt.name)
		if err == nil {
			writeJSON(w, r, "application/json", struct {
				Name string   `json:"name"`
				Tags []string `json:"tags"`
			}{rt.name, page(w, r, all, n, last)})
			return
		}
		h.opts.Log.Warn("proxy: upstream tags, listing the cached ones", "repo", rt.name, "err", err)
	}
	all, err := h.store.Tags(r.Context(), rt.name)
	if err != nil {
		writeError(w, classify(err, nil))
		return
	}
	writeJSON(w, r, "application/json", struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{rt.name, page(w, r, all, n, last)})
}

// catalog serves GET /v2/_catalog.
func (h *Handler) catalog(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w)
		return
	}
	n, last, aerr := pageParams(r)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	all, err := h.store.Repositories(r.Context())
	if err != nil {
		writeError(w, classify(err, nil))
		return
	}
	writeJSON(w, r, "application/json", struct {
		Repositories []string `json:"repositories"`
	}{page(w, r, all, n, last)})
}

// referrers serves GET /v2/<name>/referrers/<digest>.
func (h *Handler) referrers(w http.ResponseWriter, r *http.Request, rt route) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w)
		return
	}
	d, aerr := parseDigest(rt.ref)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	raw, err := h.store.Referrers(r.Context(), rt.name, d)
	if err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		writeError(w, classify(err, nil))
		return
	}
	filter := r.URL.Query().Get("artifactType")
	list := []json.RawMessage{}
	for _, b := range raw {
		if filter != "" {
			var desc descriptor
			if json.Unmarshal(b, &desc) != nil || desc.ArtifactType != filter {
				continue
			}
		}
		list = append(list, b)
	}
	if filter != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	writeJSON(w, r, mtOCIIndex, struct {
		SchemaVersion int               `json:"schemaVersion"`
		MediaType     string            `json:"mediaType"`
		Manifests     []json.RawMessage `json:"manifests"`
	}{2, mtOCIIndex, list})
}
