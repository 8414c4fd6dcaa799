package network

import (
	"errors"
	"testing"

	"github.com/berth-dev/berth/errdefs"
)

// Connections are kept per container, refuse duplicates, bad addresses and
// modes, hold their network against removal, and go with Forget or Prune.
func TestConnections(t *testing.T) {
	m := testManager(t)
	ctx := testCtx(t)
	n, err := m.Create(ctx, CreateOptions{Name: "conn", Subnet: "10.231.77.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	id := "conn" + randHex(30)
	if _, err := m.AddConnection(ctx, id, "conn", Connection{Aliases: []string{"x"}, IP: "10.231.77.9"}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.AddConnection(ctx, id, n.ID, Connection{}); !errdefs.IsAlreadyExists(err) {
		t.Errorf("a second connection to the network: %v, want already exists", err)
	}
	for _, bad := range []struct{ net, ip string }{{"host", ""}, {"nosuch", ""}, {"conn", "10.231.78.9"}, {"conn", "10.231.77.1"}} {
		if _, err := m.AddConnection(ctx, "other"+randHex(29), bad.net, Connection{IP: bad.ip}); err == nil {
			t.Errorf("connection to %s with IP %q accepted", bad.net, bad.ip)
		}
	}
	cs, err := m.Connections(ctx, id)
	if err != nil || len(cs) != 1 || cs[0].NetworkID != n.ID || cs[0].IP != "10.231.77.9" || cs[0].Aliases[0] != "x" {
		t.Errorf("Connections = %+v, %v", cs, err)
	}
	if err := m.Remove(ctx, "conn"); !errors.Is(err, errdefs.ErrInUse) {
		t.Errorf("removing a network with a connection: %v, want in use", err)
	}
	if removed, err := m.Prune(ctx, nil); err != nil || len(removed) != 0 {
		t.Errorf("prune removed %v (%v) while a container is connected", removed, err)
	}
	if err := m.PruneConnections(ctx, func(string) bool { return true }); err != nil {
		t.Fatal(err)
	}
	if had, err := m.RemoveConnection(ctx, id, n.ID); err != nil || !had {
		t.Errorf("RemoveConnection = %v, %v", had, err)
	}
	if had, err := m.RemoveConnection(ctx, id, n.ID); err != nil || had {
		t.Errorf("RemoveConnection again = %v, %v", had, err)
	}
	if _, err := m.AddConnection(ctx, id, "conn", Connection{}); err != nil {
		t.Fatal(err)
	}
	if err := m.PruneConnections(ctx, func(c string) bool { return c != id }); err != nil {
		t.Fatal(err)
	}
	if cs, _ := m.Connections(ctx, id); len(cs) != 0 {
		t.Errorf("connections of a removed container left: %+v", cs)
	}
	if err := m.Remove(ctx, "conn"); err != nil {
		t.Errorf("removing the network once no container is connected: %v", err)
	}
}
