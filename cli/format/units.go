package format

import (
	"strings"
	"time"

	units "github.com/docker/go-units"
)

// Size prints a size in bytes as docker's SIZE columns do: decimal units,
// three significant digits ("4.41MB", "1.24GB", "0B").
func Size(bytes int64) string {
	return units.HumanSizeWithPrecision(float64(bytes), 3)
}

// Since prints how long before now t was, as docker's CREATED columns do
// ("About a minute ago", "2 hours ago", "3 weeks ago").
func Since(t, now time.Time) string {
	return units.HumanDuration(now.Sub(t)) + " ago"
}

// TruncateID shortens an ID as docker prints it: without its algorithm
// ("sha256:") and cut to 12 characters.
func TruncateID(id string) string {
	if _, hex, ok := strings.Cut(id, ":"); ok {
		id = hex
	}
	if len(id) > 12 {
		id = id[:12]
	}
	return id
}
