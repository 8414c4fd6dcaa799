package runtime

import (
	"errors"
	"fmt"
	"io"

	"github.com/berth-dev/berth/runtime/internal/forkinit"
	"github.com/berth-dev/berth/runtime/internal/initproc"
)

// The parent's side of the conversation with an init, whichever kind it
// is: a forked child running a forkinit program (16-byte messages, one
// byte back), or a re-executed initproc (JSON messages).

type initEvent int

const (
	evReady initEvent = iota
	evHooks
)

// configure sends a re-executed init its configuration.
func (sp *spawned) configure(cfg *initproc.Config) error {
	if sp.prog != nil {
		return nil
	}
	if err := sp.enc.Encode(initproc.Message{Type: initproc.MsgConfig, Config: cfg}); err != nil {
		return fmt.Errorf("send config to init: %w", err)
	}
	return nil
}

// next waits for the init to be ready or to ask for hooks. A failure of
// the init is a *ProcessError.
func (sp *spawned) next() (initEvent, error) {
	if sp.prog != nil {
		m, err := sp.prog.ReadMessage(sp.sync)
		switch {
		case err != nil:
			return 0, sp.died()
		case m.Err != nil:
			return 0, &ProcessError{Code: m.Code, Msg: m.Err.Error()}
		case m.Hooks:
			return evHooks, nil
		}
		return evReady, nil
	}
	var m initproc.Message
	if err := sp.dec.Decode(&m); err != nil {
		return 0, sp.died()
	}
	switch m.Type {
	case initproc.MsgCreateRuntime:
		return evHooks, nil
	case initproc.MsgError:
		return 0, &ProcessError{Code: m.Code, Msg: m.Error}
	case initproc.MsgReady:
		return evReady, nil
	}
	return 0, fmt.Errorf("container init: unexpected message %q", m.Type)
}

func (sp *spawned) died() error {
	code, _ := sp.proc.wait()
	return fmt.Errorf("container init exited before it was ready (status %d)", code)
}

// answerHooks tells the init how its hooks went.
func (sp *spawned) answerHooks(hookErr error) error {
	if sp.prog != nil {
		return forkinit.Answer(sp.sync, hookErr == nil)
	}
	reply := initproc.Message{Type: initproc.MsgOK}
	if hookErr != nil {
		reply = initproc.Message{Type: initproc.MsgError, Error: hookErr.Error()}
	}
	return sp.enc.Encode(reply)
}

// signalStart tells an init that waits on the sync socket to exec.
func (sp *spawned) signalStart() error {
	if sp.prog != nil {
		return forkinit.Answer(sp.sync, true)
	}
	return sp.enc.Encode(initproc.Message{Type: initproc.MsgStart})
}

// waitExec waits until the init has exec'd (its end of the sync socket
// closes) or failed to.
func (sp *spawned) waitExec() error {
	defer sp.sync.Close()
	if sp.prog != nil {
		m, err := sp.prog.ReadMessage(sp.sync)
		if err == nil && m.Err != nil {
			return &ProcessError{Code: m.Code, Msg: m.Err.Error()}
		}
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return err
		}
		return nil
	}
	var m initproc.Message
	if err := sp.dec.Decode(&m); err == nil && m.Type == initproc.MsgError {
		return &ProcessError{Code: m.Code, Msg: m.Error}
	}
	return nil
}
