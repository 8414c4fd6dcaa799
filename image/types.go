// Package image owns berth's knowledge of images: the metadata store that
// records which images exist and the names (tags and digests) that point at
// them, the resolution of what a user types into one image, and the
// manifest and configuration formats (OCI and Docker schema 2).
//
// An image's ID is the digest of its configuration blob, as in Docker. Its
// blobs (manifest, config, layers) live in the content store; its unpacked
// layers live in the snapshotter. This package records only metadata.
package image

import (
	"encoding/json"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Media types of the Docker image manifest v2 schema 2, beside the OCI ones
// from image-spec.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerLayer        = "application/vnd.docker.image.rootfs.diff.tar"
	MediaTypeDockerLayerGzip    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeDockerLayerZstd    = "application/vnd.docker.image.rootfs.diff.tar.zstd"
	MediaTypeDockerForeignLayer = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
)

// Non-distributable OCI layers are deprecated, but still found in images.
const (
	mediaTypeNonDistributable     = "application/vnd.oci.image.layer.nondistributable.v1.tar"
	mediaTypeNonDistributableGzip = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
	mediaTypeNonDistributableZstd = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
)

// Limits on JSON documents read from untrusted sources.
const (
	MaxManifestSize = 4 << 20
	MaxConfigSize   = 8 << 20
)

// Manifest is an image manifest in either the OCI or the Docker schema 2
// form (they share this shape).
type Manifest struct {
	SchemaVersion int                  `json:"schemaVersion"`
	MediaType     string               `json:"mediaType,omitempty"`
	Config        ocispec.Descriptor   `json:"config"`
	Layers        []ocispec.Descriptor `json:"layers"`
	Annotations   map[string]string    `json:"annotations,omitempty"`
}

// Config is an image configuration: the OCI image config with the fields
// Docker adds (Healthcheck, OnBuild, Shell, ...). Unknown fields are not kept
// here: the original blob stays the truth, this is a reading of it.
type Config struct {
	Created      *time.Time      `json:"created,omitempty"`
	Author       string          `json:"author,omitempty"`
	Architecture string          `json:"architecture"`
	Variant      string          `json:"variant,omitempty"`
	OS           string          `json:"os"`
	OSVersion    string          `json:"os.version,omitempty"`
	Config       ContainerConfig `json:"config"`
	RootFS       ocispec.RootFS  `json:"rootfs"`
	History      []History       `json:"history,omitempty"`

	// Docker's legacy fields, shown by inspect when present.
	DockerVersion string `json:"docker_version,omitempty"`
	Comment       string `json:"comment,omitempty"`
}

// History is one entry of an image's build history.
type History struct {
	Created    *time.Time `json:"created,omitempty"`
	CreatedBy  string     `json:"created_by,omitempty"`
	Author     string     `json:"author,omitempty"`
	Comment    string     `json:"comment,omitempty"`
	EmptyLayer bool       `json:"empty_layer,omitempty"`
}

// ContainerConfig is the part of an image config that seeds a container.
type ContainerConfig struct {
	Hostname     string              `json:"Hostname,omitempty"`
	Domainname   string              `json:"Domainname,omitempty"`
	User         string              `json:"User,omitempty"`
	ExposedPorts map[string]struct{} `json:"ExposedPorts,omitempty"`
	Env          []string            `json:"Env,omitempty"`
	Entrypoint   []string            `json:"Entrypoint,omitempty"`
	Cmd          []string            `json:"Cmd,omitempty"`
	Healthcheck  *HealthConfig       `json:"Healthcheck,omitempty"`
	ArgsEscaped  bool                `json:"ArgsEscaped,omitempty"`
	Volumes      map[string]struct{} `json:"Volumes,omitempty"`
	WorkingDir   string              `json:"WorkingDir,omitempty"`
	Labels       map[string]string   `json:"Labels,omitempty"`
	StopSignal   string              `json:"StopSignal,omitempty"`
	OnBuild      []string            `json:"OnBuild,omitempty"`
	Shell        []string            `json:"Shell,omitempty"`
}

// HealthConfig is Docker's HEALTHCHECK.
type HealthConfig struct {
	Test          []string      `json:"Test,omitempty"`
	Interval      time.Duration `json:"Interval,omitempty"`
	Timeout       time.Duration `json:"Timeout,omitempty"`
	StartPeriod   time.Duration `json:"StartPeriod,omitempty"`
	StartInterval time.Duration `json:"StartInterval,omitempty"`
	Retries       int           `json:"Retries,omitempty"`
}

// ParseManifest reads a manifest, refusing the kinds berth cannot run.
func ParseManifest(b []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// ParseConfig reads an image configuration.
func ParseConfig(b []byte) (*Config, error) {
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// IsLayerMediaType reports whether mt names a layer berth can unpack.
func IsLayerMediaType(mt string) bool {
	switch mt {
	case ocispec.MediaTypeImageLayer, ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageLayerZstd,
		mediaTypeNonDistributable, mediaTypeNonDistributableGzip, mediaTypeNonDistributableZstd,
		MediaTypeDockerLayer, MediaTypeDockerLayerGzip, MediaTypeDockerLayerZstd, MediaTypeDockerForeignLayer:
		return true
	}
	return false
}

// ChainIDs returns the chain IDs of a stack of layers given their diff IDs:
// the keys of their snapshots.
func ChainIDs(diffIDs []digest.Digest) []digest.Digest {
	out := make([]digest.Digest, len(diffIDs))
	for i, d := range diffIDs {
		if i == 0 {
			out[i] = d
			continue
		}
		out[i] = digest.FromString(out[i-1].String() + " " + d.String())
	}
	return out
}
