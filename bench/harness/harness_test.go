package harness

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		times []time.Duration
		want  time.Duration
	}{
		{nil, 0},
		{[]time.Duration{3}, 3},
		{[]time.Duration{5, 1, 3}, 3},
		{[]time.Duration{4, 1, 3, 2}, 2},
	} {
		if got := (Measure{Times: tc.times}).Median(); got != tc.want {
			t.Errorf("median of %v = %v, want %v", tc.times, got, tc.want)
		}
	}
}

// fileSide is a side whose work writes a file in its fresh directory,
// failing if the directory is not empty when it starts.
func fileSide(name string) Side {
	return Side{
		Name: name,
		Setup: func(_ context.Context, dir string) (Timed, error) {
			ents, err := os.ReadDir(dir)
			if err != nil {
				return nil, err
			}
			if len(ents) != 0 {
				return nil, errors.New("run directory is not fresh")
			}
			return func(context.Context) error {
				return os.WriteFile(dir+"/f", []byte("x"), 0o644)
			}, nil
		},
	}
}

func TestRunAndPrint(t *testing.T) {
	broken := Side{Name: "broken", Setup: func(context.Context, string) (Timed, error) {
		return func(context.Context) error { return errors.New("exit status 125\nError: no such thing") }, nil
	}}
	row := Row{
		Name:  "write",
		Note:  "writes a file",
		Bytes: 1,
		Berth: fileSide("berth write"),
		Peers: []Side{fileSide("peer write"), {Name: "absent", Skip: "not installed"}, broken},
	}
	cfg := Config{Runs: 3, TempDir: t.TempDir()}
	res := Run(context.Background(), cfg, row)
	if res.Berth.Err != nil || len(res.Berth.Times) != 3 {
		t.Fatalf("berth side: %d times, error %v; want 3 times", len(res.Berth.Times), res.Berth.Err)
	}
	if p := res.Peers[0]; p.Err != nil || len(p.Times) != 3 {
		t.Fatalf("peer side: %d times, error %v; want 3 times", len(p.Times), p.Err)
	}
	if res.Peers[1].Err == nil || res.Peers[2].Err == nil {
		t.Fatalf("skipped and broken sides have no error: %v, %v", res.Peers[1].Err, res.Peers[2].Err)
	}
	ents, err := os.ReadDir(cfg.TempDir)
	if err != nil || len(ents) != 0 {
		t.Errorf("run directories left behind: %v %v", ents, err)
	}

	var out bytes.Buffer
	if err := PrintTable(&out, cfg.Runs, []Result{res}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"BERTH/PEER", "peer write", "MB/s", "absent: not measured: not installed", "Error: no such thing"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}
