// Package archive owns the layer tar format: it detects and undoes layer
// compression, unpacks an OCI/Docker layer tar into a directory (translating
// OCI whiteouts into the form the snapshotter wants), and writes directory
// trees and overlay upper directories back out as tar streams.
//
// Every path that comes from a tar is resolved inside the directory being
// unpacked into: entries that would escape it, directly or through a
// symlink, are refused with an error of class errdefs.ErrInvalidArgument.
// A stream that is truncated or malformed gives errdefs.ErrDataCorrupt.
package archive

import (
	"bufio"
	"bytes"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/errdefs"
)

// Compression is the compression of a layer stream.
type Compression int

// The compressions a layer may use.
const (
	Uncompressed Compression = iota
	Gzip
	Zstd
)

func (c Compression) String() string {
	switch c {
	case Uncompressed:
		return "uncompressed"
	case Gzip:
		return "gzip"
	case Zstd:
		return "zstd"
	}
	return fmt.Sprintf("Compression(%d)", int(c))
}

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// readBufSize is the size of the buffer in front of a compressed stream and
// of the chunks file contents are copied in.
const readBufSize = 1 << 20

// DecompressStream detects the compression of r from its first bytes and
// returns a reader of the uncompressed stream and the compression found.
// Closing the returned reader releases the decompressor; it does not close r.
func DecompressStream(r io.Reader) (io.ReadCloser, Compression, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, err := br.Peek(len(zstdMagic))
	if err != nil && err != io.EOF {
		return nil, Uncompressed, fmt.Errorf("detect compression: %w", err)
	}
	switch {
	case bytes.HasPrefix(magic, gzipMagic):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, Gzip, corrupt("open gzip stream", err)
		}
		return zr, Gzip, nil
	case bytes.HasPrefix(magic, zstdMagic):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(false))
		if err != nil {
			return nil, Zstd, corrupt("open zstd stream", err)
		}
		return zstdReadCloser{zr}, Zstd, nil
	}
	return io.NopCloser(br), Uncompressed, nil
}

// zstdReadCloser adapts a zstd.Decoder, whose Close returns nothing.
type zstdReadCloser struct{ d *zstd.Decoder }

func (z zstdReadCloser) Read(p []byte) (int, error) { return z.d.Read(p) }
func (z zstdReadCloser) Close() error               { z.d.Close(); return nil }

// corrupt wraps err as an errdefs.ErrDataCorrupt error about what.
func corrupt(what string, err error) error {
	return errdefs.DataCorrupt("%s: %w", what, err)
}

// WhiteoutMode says how Apply writes the OCI whiteouts of a layer.
type WhiteoutMode int

const (
	// WhiteoutOverlay writes whiteouts as overlayfs expects them in a lower
	// directory: a `.wh.x` entry becomes a character device 0/0 named x, and
	// a `.wh..wh..opq` entry sets trusted.overlay.opaque=y on its directory.
	WhiteoutOverlay WhiteoutMode = iota
	// WhiteoutDelete removes the whited-out paths from the directory, which
	// must hold a full copy of the parent layer (the copy-based snapshotter).
	WhiteoutDelete
	// WhiteoutNone reads no whiteouts: a `.wh.x` entry is a file of that
	// name, as in an archive that is not a layer (what `cp` copies in).
	WhiteoutNone
)

func (m WhiteoutMode) String() string {
	switch m {
	case WhiteoutOverlay:
		return "overlay"
	case WhiteoutDelete:
		return "delete"
	case WhiteoutNone:
		return "none"
	}
	return fmt.Sprintf("WhiteoutMode(%d)", int(m))
}

// The OCI whiteout names.
const (
	whiteoutPrefix = ".wh."
	whiteoutOpaque = ".wh..wh..opq"
)

// The xattr overlayfs reads to make a directory opaque.
const overlayOpaqueXattr = "trusted.overlay.opaque"

// ApplyOptions tune Apply.
type ApplyOptions struct {
	// Whiteouts says how the layer's whiteouts are written.
	Whiteouts WhiteoutMode
}

// ApplyResult describes the layer Apply unpacked.
type ApplyResult struct {
	// DiffID is the sha256 digest of the uncompressed tar stream.
	DiffID digest.Digest
	// Size is the length in bytes of the uncompressed tar stream.
	Size int64
}
