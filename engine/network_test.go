package engine

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/filters"
	"github.com/berth-dev/berth/network"
)

// These tests touch only files: networks make nothing in the kernel until
// a container is attached (the network package's tests cover that).
func TestNetworkCreateListInspectRemove(t *testing.T) {
	e := newEngine(t)
	ctx := context.Background()
	n, err := e.NetworkCreate(ctx, network.CreateOptions{Name: "web", Subnet: "10.233.7.0/24", Labels: map[string]string{"env": "test"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.NetworkCreate(ctx, network.CreateOptions{Name: "web2", Subnet: "10.233.7.128/25"}); !errdefs.IsConflict(err) {
		t.Errorf("overlapping subnet: %v", err)
	}
	all, err := e.NetworkList(ctx, filters.Args{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range all {
		names = append(names, r.Name)
	}
	if len(names) != 4 || names[0] != "bridge" || names[1] != "host" || names[2] != "none" || names[3] != "web" {
		t.Errorf("networks = %v", names)
	}
	for f, want := range map[string]int{"type=custom": 1, "type=builtin": 3, "driver=bridge": 2, "label=env=test": 1, "name=we": 1, "dangling=true": 1} {
		args, err := filters.Parse([]string{f})
		if err != nil {
			t.Fatal(err)
		}
		got, err := e.NetworkList(ctx, args)
		if err != nil || len(got) != want {
			t.Errorf("filter %s: %d networks, %v; want %d", f, len(got), err, want)
		}
	}
	r, err := e.NetworkInspect(ctx, n.ID[:5])
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(r)
	var m map[string]any
	json.Unmarshal(b, &m)
	for _, k := range []string{"Name", "Id", "Created", "Scope", "Driver", "EnableIPv6", "IPAM", "Internal", "Attachable", "Ingress", "ConfigFrom", "ConfigOnly", "Containers", "Options", "Labels"} {
		if _, ok := m[k]; !ok {
			t.Errorf("inspect lacks %s: %s", k, b)
		}
	}
	if r.IPAM.Config[0].Subnet != "10.233.7.0/24" || r.IPAM.Config[0].Gateway != "10.233.7.1" {
		t.Errorf("IPAM = %+v", r.IPAM)
	}
	if err := e.NetworkConnect(ctx, "missing", "c1", NetworkConnectOptions{}); !errdefs.IsNotFound(err) {
		t.Errorf("connect to a missing network: %v", err)
	}
	if err := e.NetworkDisconnect(ctx, "web", "c1", false); !errdefs.IsNotFound(err) {
		t.Errorf("disconnect a container not connected: %v", err)
	}
	if err := e.NetworkRemove(ctx, "bridge"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("remove bridge: %v", err)
	}
	if err := e.NetworkRemove(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.NetworkInspect(ctx, "web"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("inspect removed network: %v", err)
	}
}

func TestNetworkPrune(t *testing.T) {
	e := newEngine(t)
	ctx := context.Background()
	for _, o := range []network.CreateOptions{
		{Name: "keep", Subnet: "10.233.8.0/24", Labels: map[string]string{"keep": "1"}},
		{Name: "drop", Subnet: "10.233.9.0/24"},
	} {
		if _, err := e.NetworkCreate(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	removed, err := e.NetworkPrune(ctx, filters.Args{"label": {"nosuch"}})
	if err != nil || len(removed) != 0 {
		t.Fatalf("prune by a label no network has = %v, %v", removed, err)
	}
	if _, err := e.NetworkPrune(ctx, filters.Args{"until": {"soon"}}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("bad until: %v", err)
	}
	removed, err = e.NetworkPrune(ctx, filters.Args{})
	if err != nil || len(removed) != 2 {
		t.Fatalf("prune = %v, %v", removed, err)
	}
	left, _ := e.NetworkList(ctx, filters.Args{})
	if len(left) != 3 {
		t.Errorf("%d networks left, want the 3 predefined", len(left))
	}
}
