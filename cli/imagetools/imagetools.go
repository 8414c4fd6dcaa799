// Package imagetools holds the command line's image tools: build, pull,
// push, login, logout, manifest and registry — the commands that make
// images or move them between berth and registries, as buildah and
// skopeo do for Podman. They are in a package (and, with every other
// command, a binary: cmd/berth-imagetools) of their own because their
// dependencies would make every berth process slower to start; the berth
// binary runs them through that one (see cli.ImageToolsBinary).
package imagetools

import "github.com/berth-dev/berth/cli"

// Commands are the image tools, to add to a command line (cli.Main).
func Commands() []cli.Command {
	return []cli.Command{
		{Names: []string{"build"}, Make: newBuildCmd},
		{Names: []string{"pull"}, Make: newPullCmd},
		{Names: []string{"push"}, Make: newPushCmd},
		{Names: []string{"login"}, Make: newLoginCmd},
		{Names: []string{"logout"}, Make: newLogoutCmd},
		{Names: []string{"manifest"}, Make: newManifestCmd},
		{Names: []string{"registry"}, Make: newRegistryCmd},
	}
}
