package server

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/berth-dev/berth/errdefs"
)

// apiError is an error as the distribution spec words it: an HTTP status
// and a code from the spec's table.
type apiError struct {
	status  int
	code    string
	message string
	detail  any
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func newError(status int, code, message string) *apiError {
	return &apiError{status: status, code: code, message: message}
}

// The spec's error codes.
const (
	codeBlobUnknown         = "BLOB_UNKNOWN"
	codeBlobUploadInvalid   = "BLOB_UPLOAD_INVALID"
	codeBlobUploadUnknown   = "BLOB_UPLOAD_UNKNOWN"
	codeDigestInvalid       = "DIGEST_INVALID"
	codeManifestBlobUnknown = "MANIFEST_BLOB_UNKNOWN"
	codeManifestInvalid     = "MANIFEST_INVALID"
	codeManifestUnknown     = "MANIFEST_UNKNOWN"
	codeNameInvalid         = "NAME_INVALID"
	codeNameUnknown         = "NAME_UNKNOWN"
	codeSizeInvalid         = "SIZE_INVALID"
	codeUnauthorized        = "UNAUTHORIZED"
	codeDenied              = "DENIED"
	codeUnsupported         = "UNSUPPORTED"
	codeUnavailable         = "UNAVAILABLE"   // not in the spec's table; distribution's word for 503 (an upstream is unreachable)
	codeRangeInvalid        = "RANGE_INVALID" // not in the spec's table; distribution's word for 416 on uploads
)

// classify turns a storage error into an API error, using fallback for
// errors of class NotFound.
func classify(err error, notFound *apiError) *apiError {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		return ae
	case errdefs.IsNotFound(err) && notFound != nil:
		return &apiError{status: notFound.status, code: notFound.code, message: err.Error()}
	case errdefs.IsInvalidArgument(err):
		return newError(http.StatusBadRequest, codeNameInvalid, err.Error())
	case errors.Is(err, errdefs.ErrDataCorrupt):
		return newError(http.StatusBadRequest, codeDigestInvalid, err.Error())
	case errors.Is(err, errdefs.ErrUnavailable):
		return newError(http.StatusServiceUnavailable, codeUnavailable, err.Error())
	default:
		return &apiError{status: http.StatusInternalServerError, code: "UNKNOWN", message: "internal error"}
	}
}

func writeError(w http.ResponseWriter, e *apiError) {
	type item struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Detail  any    `json:"detail,omitempty"`
	}
	body, _ := json.Marshal(struct {
		Errors []item `json:"errors"`
	}{[]item{{e.code, e.message, e.detail}}})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Del("Content-Length")
	w.WriteHeader(e.status)
	w.Write(append(body, '\n'))
}
