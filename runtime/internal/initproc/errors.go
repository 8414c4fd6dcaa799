package initproc

import "errors"

var errInvalidFilter = errors.New("seccomp: program length is not a multiple of 8")

type seccompError struct{ errno error }

func (e *seccompError) Error() string { return "load seccomp filter: " + e.errno.Error() }
func (e *seccompError) Unwrap() error { return e.errno }
