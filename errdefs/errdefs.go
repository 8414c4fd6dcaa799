// Package errdefs owns berth's error vocabulary: a small set of error classes
// that every package wraps its errors in (with %w), and that the fronts map
// once to their own codes — CLI exit codes, HTTP statuses, gRPC codes.
package errdefs

import (
	"errors"
	"fmt"
)

// The error classes. Test with errors.Is(err, errdefs.ErrNotFound) or the Is
// helpers below.
var (
	ErrNotFound        = errors.New("not found")
	ErrAlreadyExists   = errors.New("already exists")
	ErrInvalidArgument = errors.New("invalid argument")
	ErrConflict        = errors.New("conflict")
	ErrInUse           = errors.New("in use")
	ErrUnavailable     = errors.New("unavailable")
	ErrNotImplemented  = errors.New("not implemented")
	ErrDataCorrupt     = errors.New("data corrupt")
	ErrPermission      = errors.New("permission denied")
)

// classed is an error carrying a class and a message of its own: its text is
// only the message (the class is not repeated), and errors.Is matches both
// the class and whatever the message wrapped.
type classed struct {
	class error
	err   error
}

func (c *classed) Error() string   { return c.err.Error() }
func (c *classed) Unwrap() []error { return []error{c.class, c.err} }

func wrap(class error, format string, args ...any) error {
	return &classed{class: class, err: fmt.Errorf(format, args...)}
}

// NotFound returns an error of class ErrNotFound with the given message.
func NotFound(format string, args ...any) error { return wrap(ErrNotFound, format, args...) }

// AlreadyExists returns an error of class ErrAlreadyExists.
func AlreadyExists(format string, args ...any) error {
	return wrap(ErrAlreadyExists, format, args...)
}

// InvalidArgument returns an error of class ErrInvalidArgument.
func InvalidArgument(format string, args ...any) error {
	return wrap(ErrInvalidArgument, format, args...)
}

// Conflict returns an error of class ErrConflict.
func Conflict(format string, args ...any) error { return wrap(ErrConflict, format, args...) }

// InUse returns an error of class ErrInUse.
func InUse(format string, args ...any) error { return wrap(ErrInUse, format, args...) }

// DataCorrupt returns an error of class ErrDataCorrupt.
func DataCorrupt(format string, args ...any) error { return wrap(ErrDataCorrupt, format, args...) }

// NotImplemented returns an error of class ErrNotImplemented.
func NotImplemented(format string, args ...any) error {
	return wrap(ErrNotImplemented, format, args...)
}

// IsNotFound reports whether err is of class ErrNotFound.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsAlreadyExists reports whether err is of class ErrAlreadyExists.
func IsAlreadyExists(err error) bool { return errors.Is(err, ErrAlreadyExists) }

// IsInvalidArgument reports whether err is of class ErrInvalidArgument.
func IsInvalidArgument(err error) bool { return errors.Is(err, ErrInvalidArgument) }

// IsConflict reports whether err is of class ErrConflict.
func IsConflict(err error) bool { return errors.Is(err, ErrConflict) }

// IsInUse reports whether err is of class ErrInUse.
func IsInUse(err error) bool { return errors.Is(err, ErrInUse) }
