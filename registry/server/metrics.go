package server

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// metrics counts requests for the /metrics endpoint, in Prometheus' text
// exposition format.
type metrics struct {
	mu       sync.Mutex
	requests map[[2]string]uint64 // method, status code
	bytesOut uint64
	// buckets[i] counts requests that took at most bounds[i] seconds.
	buckets []uint64
	count   uint64
	sum     float64
}

var bounds = []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30}

func newMetrics() *metrics {
	return &metrics{requests: map[[2]string]uint64{}, buckets: make([]uint64, len(bounds))}
}

func (m *metrics) observe(method string, status int, d time.Duration, out int64) {
	s := d.Seconds()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.requests[[2]string{method, strconv.Itoa(status)}]++
	m.bytesOut += uint64(out)
	m.count++
	m.sum += s
	for i, b := range bounds {
		if s <= b {
			m.buckets[i]++
		}
	}
}

func (m *metrics) serve(w http.ResponseWriter, r *http.Request) {
	var b strings.Builder
	m.mu.Lock()
	keys := make([][2]string, 0, len(m.requests))
	for k := range m.requests {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i][0] < keys[j][0] || keys[i][0] == keys[j][0] && keys[i][1] < keys[j][1]
	})
	b.WriteString("# HELP berth_registry_requests_total Requests served, by method and status code.\n")
	b.WriteString("# TYPE berth_registry_requests_total counter\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "berth_registry_requests_total{method=%q,code=%q} %d\n", k[0], k[1], m.requests[k])
	}
	b.WriteString("# HELP berth_registry_response_bytes_total Bytes of response bodies sent.\n")
	b.WriteString("# TYPE berth_registry_response_bytes_total counter\n")
	fmt.Fprintf(&b, "berth_registry_response_bytes_total %d\n", m.bytesOut)
	b.WriteString("# HELP berth_registry_request_duration_seconds Time to serve a request.\n")
	b.WriteString("# TYPE berth_registry_request_duration_seconds histogram\n")
	for i, bound := range bounds {
		fmt.Fprintf(&b, "berth_registry_request_duration_seconds_bucket{le=\"%g\"} %d\n", bound, m.buckets[i])
	}
	fmt.Fprintf(&b, "berth_registry_request_duration_seconds_bucket{le=\"+Inf\"} %d\n", m.count)
	fmt.Fprintf(&b, "berth_registry_request_duration_seconds_sum %g\n", m.sum)
	fmt.Fprintf(&b, "berth_registry_request_duration_seconds_count %d\n", m.count)
	m.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Write([]byte(b.String()))
}
