package format

import (
	"testing"
	"time"
)

func TestSize(t *testing.T) {
	for in, want := range map[int64]string{
		0:             "0B",
		999:           "999B",
		1024:          "1.02kB",
		4_413_000:     "4.41MB",
		1_240_000_000: "1.24GB",
		77_800_000:    "77.8MB",
	} {
		if got := Size(in); got != want {
			t.Errorf("Size(%d) = %q, want %q", in, got, want)
		}
	}
}

func TestSince(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for d, want := range map[time.Duration]string{
		0:                    "Less than a second ago",
		30 * time.Second:     "30 seconds ago",
		70 * time.Second:     "About a minute ago",
		2 * time.Hour:        "2 hours ago",
		50 * time.Minute:     "50 minutes ago",
		21 * 24 * time.Hour:  "3 weeks ago",
		400 * 24 * time.Hour: "13 months ago",
	} {
		if got := Since(now.Add(-d), now); got != want {
			t.Errorf("Since(-%v) = %q, want %q", d, got, want)
		}
	}
}

func TestTruncateID(t *testing.T) {
	for in, want := range map[string]string{
		"sha256:beae173ccac6ad749f76713cf4440fe3d21d1043fe616dfbe30775815d1d0f6a": "beae173ccac6",
		"beae173ccac6ad749f76713cf4440fe3d21d1043fe616dfbe30775815d1d0f6a":        "beae173ccac6",
		"abc":        "abc",
		"sha256:abc": "abc",
		"":           "",
	} {
		if got := TruncateID(in); got != want {
			t.Errorf("TruncateID(%q) = %q, want %q", in, got, want)
		}
	}
}
