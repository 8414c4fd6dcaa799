package errdefs

import (
	"errors"
	"fmt"
	"io"
	"testing"
)

func TestClasses(t *testing.T) {
	for _, tc := range []struct {
		err   error
		class error
		text  string
	}{
		{NotFound("No such image: %s", "x"), ErrNotFound, "No such image: x"},
		{InvalidArgument("bad ref %q", "A"), ErrInvalidArgument, `bad ref "A"`},
		{fmt.Errorf("load: %w", Conflict("busy")), ErrConflict, "load: busy"},
		{DataCorrupt("read layer: %w", io.ErrUnexpectedEOF), ErrDataCorrupt, "read layer: unexpected EOF"},
	} {
		if !errors.Is(tc.err, tc.class) {
			t.Errorf("%v: not of class %v", tc.err, tc.class)
		}
		if tc.err.Error() != tc.text {
			t.Errorf("text %q, want %q", tc.err.Error(), tc.text)
		}
	}
	if !errors.Is(DataCorrupt("x: %w", io.ErrUnexpectedEOF), io.ErrUnexpectedEOF) {
		t.Error("wrapped cause lost")
	}
	if IsNotFound(AlreadyExists("x")) {
		t.Error("AlreadyExists matched NotFound")
	}
}
