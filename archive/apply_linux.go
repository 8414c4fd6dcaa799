package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"

	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/errdefs"
)

// Apply unpacks one layer read from r, in any compression DecompressStream
// knows, into dir. It is one streaming pipeline: r is read, decompressed,
// hashed and unpacked as it arrives, with nothing buffered beyond a few
// megabytes. Apply reads r to its end, so a caller hashing the compressed
// bytes on the way in sees all of them.
//
// Apply preserves modes (setuid, setgid and sticky bits included), owners,
// modification times, extended attributes, hardlinks, symlinks, devices,
// fifos and holes in files. It writes whiteouts as opts.Whiteouts says. It
// does not sync what it writes: see Sync.
//
// Entries that would be written outside dir (absolute names, `..`, or a path
// through a symlink leading out of dir) and hardlinks to targets outside dir
// are refused with an error of class errdefs.ErrInvalidArgument; a truncated
// or malformed stream gives errdefs.ErrDataCorrupt. On error, dir is left
// partly written; the caller discards it.
func Apply(ctx context.Context, dir string, r io.Reader, opts ApplyOptions) (ApplyResult, error) {
	src := &errReader{r: r}
	dr, _, err := DecompressStream(src)
	if err != nil {
		return ApplyResult{}, fmt.Errorf("apply layer to %s: %w", dir, src.blame(err))
	}
	defer dr.Close()

	rootFD, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return ApplyResult{}, fmt.Errorf("apply layer: open %s: %w", dir, err)
	}
	pf := newPrefetcher(dr)
	defer pf.stop()
	a := &applier{
		ctx:      ctx,
		root:     dir,
		rootFD:   rootFD,
		mode:     opts.Whiteouts,
		tr:       tar.NewReader(pf),
		buf:      make([]byte, readBufSize),
		cacheFD:  -1,
		written:  make(map[string]struct{}),
		dirTimes: make(map[string][2]unix.Timespec),
	}
	defer a.close()

	err = a.run()
	if err == nil {
		// Read the end-of-archive blocks and any padding after them, so
		// that the digest covers the whole stream.
		_, err = io.CopyBuffer(io.Discard, pf, a.buf)
	}
	pf.stop()
	if err == nil {
		// Then whatever is left of r after the compressed stream.
		_, err = io.CopyBuffer(io.Discard, src, a.buf)
	}
	if err != nil {
		return ApplyResult{}, fmt.Errorf("apply layer to %s: %w", dir, src.blame(err))
	}
	return ApplyResult{
		DiffID: digest.NewDigestFromBytes(digest.SHA256, pf.h.Sum(nil)),
		Size:   pf.n,
	}, nil
}

// Sync flushes the whole filesystem holding dir to disk (syncfs(2)): one call
// after unpacking a layer instead of one fsync per file.
func Sync(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// errReader remembers the first error of the reader it wraps, so that a
// failure of the source (a network error) is reported as itself and not as
// a corrupt stream.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}

// blame returns the source's own error if it failed, and otherwise err, as
// an errdefs.ErrDataCorrupt error when it comes from the stream's format.
func (e *errReader) blame(err error) error {
	if e.err != nil {
		return fmt.Errorf("read layer: %w", e.err)
	}
	if isFormatError(err) {
		return corrupt("layer stream", err)
	}
	return err
}

// isFormatError reports whether err says the stream is truncated or
// malformed (and is not a filesystem or an argument error).
func isFormatError(err error) bool {
	var pe *os.PathError
	var se *os.SyscallError
	var errno unix.Errno
	switch {
	case errors.Is(err, errdefs.ErrInvalidArgument), errors.Is(err, errdefs.ErrDataCorrupt),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false
	case errors.As(err, &pe), errors.As(err, &se), errors.As(err, &errno):
		return false
	}
	return true
}

// applier holds the state of one Apply.
type applier struct {
	ctx    context.Context
	root   string
	rootFD int
	mode   WhiteoutMode
	tr     *tar.Reader
	buf    []byte

	// The directory of the last entry, kept open: entries come grouped by
	// directory. cacheStale is set when something was removed, which may
	// change what cacheDir resolves to.
	cacheDir   string
	cacheFD    int
	cacheStale bool

	// written holds the paths of the entries of this layer, which its own
	// whiteouts do not hide.
	written map[string]struct{}
	// dirTimes holds the times of the directories, set once their contents
	// are written.
	dirTimes map[string][2]unix.Timespec
}

func (a *applier) close() {
	a.dropCache()
	unix.Close(a.rootFD)
}

func (a *applier) dropCache() {
	if a.cacheFD >= 0 {
		unix.Close(a.cacheFD)
	}
	a.cacheFD, a.cacheDir, a.cacheStale = -1, "", false
}

func (a *applier) run() error {
	for {
		if err := a.ctx.Err(); err != nil {
			return err
		}
		hdr, err := a.tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if err := a.entry(hdr); err != nil {
			return err
		}
	}
	for p, ts := range a.dirTimes {
		if p == "." {
			if err := unix.UtimesNanoAt(a.rootFD, ".", ts[:], 0); err != nil {
				return fmt.Errorf("set times of layer root: %w", err)
			}
			continue
		}
		pfd, err := a.parent(path.Dir(p), false)
		if errors.Is(err, unix.ENOENT) {
			continue // removed by a later entry
		}
		if err != nil {
			return err
		}
		if err := unix.UtimesNanoAt(pfd, path.Base(p), ts[:], unix.AT_SYMLINK_NOFOLLOW); err != nil && err != unix.ENOENT {
			return fmt.Errorf("layer entry %q: set times: %w", p, err)
		}
	}
	return nil
}

// cleanName returns the path of a tar name relative to the layer root, or
// an error if it would be outside it. what names the path in the error
// when it is not the entry's own name.
func cleanName(entry, name, what string) (string, error) {
	subject := fmt.Sprintf("layer entry %q", entry)
	if what != "" {
		subject = fmt.Sprintf("layer entry %q: %s %q", entry, what, name)
	}
	if strings.HasPrefix(name, "/") {
		return "", errdefs.InvalidArgument("%s is an absolute path", subject)
	}
	p := path.Clean(name)
	if p == ".." || strings.HasPrefix(p, "../") {
		return "", errdefs.InvalidArgument("%s escapes the layer root", subject)
	}
	return p, nil
}

func (a *applier) entry(hdr *tar.Header) error {
	p, err := cleanName(hdr.Name, hdr.Name, "")
	if err != nil {
		return err
	}
	dir, base := path.Dir(p), path.Base(p)

	if strings.HasPrefix(base, whiteoutPrefix) && a.mode != WhiteoutNone {
		return a.whiteout(hdr.Name, dir, base)
	}
	if p == "." {
		if hdr.Typeflag != tar.TypeDir {
			return errdefs.InvalidArgument("layer entry %q: the layer root is not a directory", hdr.Name)
		}
		a.written[p] = struct{}{}
		return a.rootDir(hdr)
	}

	var linkDir, linkBase string
	if hdr.Typeflag == tar.TypeLink {
		lp, err := cleanName(hdr.Name, hdr.Linkname, "hardlink target")
		if err != nil {
			return err
		}
		if lp == "." {
			return errdefs.InvalidArgument("layer entry %q: hardlink to the layer root", hdr.Name)
		}
		linkDir, linkBase = path.Dir(lp), path.Base(lp)
	}

	pfd, err := a.parent(dir, true)
	if err != nil {
		return a.pathErr(hdr.Name, err)
	}
	a.written[p] = struct{}{}
	if hdr.Typeflag != tar.TypeDir {
		delete(a.dirTimes, p)
	}

	mode := uint32(hdr.Mode) & 0o7777
	switch hdr.Typeflag {
	case tar.TypeDir:
		err = a.mkdir(pfd, base)
	case tar.TypeReg, tar.TypeGNUSparse, tar.TypeCont:
		return a.regular(hdr, pfd, base, mode)
	case tar.TypeSymlink:
		err = a.create(pfd, base, func() error { return unix.Symlinkat(hdr.Linkname, pfd, base) })
	case tar.TypeLink:
		lfd, err := a.openDir(linkDir)
		if err != nil {
			return a.linkErr(hdr, err)
		}
		defer unix.Close(lfd)
		err = a.create(pfd, base, func() error { return unix.Linkat(lfd, linkBase, pfd, base, 0) })
		if err != nil {
			return a.linkErr(hdr, err)
		}
		return nil
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		typ := map[byte]uint32{tar.TypeChar: unix.S_IFCHR, tar.TypeBlock: unix.S_IFBLK, tar.TypeFifo: unix.S_IFIFO}[hdr.Typeflag]
		dev := int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))
		err = a.create(pfd, base, func() error { return unix.Mknodat(pfd, base, typ|mode, dev) })
	default:
		// Global PAX headers and types with no meaning for a filesystem.
		return nil
	}
	if err != nil {
		return fmt.Errorf("layer entry %q: %w", hdr.Name, err)
	}
	if err := a.metadata(hdr, p, pfd, base, mode); err != nil {
		return fmt.Errorf("layer entry %q: %w", hdr.Name, err)
	}
	return nil
}

func (a *applier) pathErr(name string, err error) error {
	switch {
	case errors.Is(err, unix.EXDEV), errors.Is(err, unix.ELOOP):
		return errdefs.InvalidArgument("layer entry %q escapes the layer root through a symlink", name)
	case errors.Is(err, unix.ENOTDIR):
		return errdefs.InvalidArgument("layer entry %q: a parent is not a directory", name)
	}
	return fmt.Errorf("layer entry %q: %w", name, err)
}

func (a *applier) linkErr(hdr *tar.Header, err error) error {
	switch {
	case errors.Is(err, unix.EXDEV), errors.Is(err, unix.ELOOP):
		return errdefs.InvalidArgument("layer entry %q: hardlink target %q escapes the layer root through a symlink", hdr.Name, hdr.Linkname)
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTDIR):
		return errdefs.InvalidArgument("layer entry %q: hardlink target %q does not exist in the layer", hdr.Name, hdr.Linkname)
	case errors.Is(err, unix.EPERM):
		return errdefs.InvalidArgument("layer entry %q: hardlink target %q is a directory", hdr.Name, hdr.Linkname)
	}
	return fmt.Errorf("layer entry %q: link to %q: %w", hdr.Name, hdr.Linkname, err)
}

// openBeneath opens the directory p (relative to the root) without leaving
// the root, through symlinks or `..`.
func (a *applier) openBeneath(p string, flags uint64) (int, error) {
	how := unix.OpenHow{
		Flags:   flags | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
	}
	for {
		fd, err := unix.Openat2(a.rootFD, p, &how)
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		return fd, err
	}
}

// openDir opens the directory p for the caller, who closes it.
func (a *applier) openDir(p string) (int, error) {
	if p == "." {
		return unix.Dup(a.rootFD)
	}
	return a.openBeneath(p, unix.O_PATH)
}

// parent returns a descriptor of the directory p, creating it (and its
// parents) if create is set. The descriptor stays valid until the next call.
func (a *applier) parent(p string, create bool) (int, error) {
	if p == "." {
		return a.rootFD, nil
	}
	if a.cacheStale {
		a.dropCache()
	}
	if a.cacheFD >= 0 && a.cacheDir == p {
		return a.cacheFD, nil
	}
	fd, err := a.openBeneath(p, unix.O_PATH)
	if err == unix.ENOENT && create {
		fd, err = a.mkdirAll(p)
	}
	if err != nil {
		return -1, err
	}
	a.dropCache()
	a.cacheFD, a.cacheDir = fd, p
	return fd, nil
}

// mkdirAll creates the missing directories of p, each one checked to be
// beneath the root, and returns a descriptor of p.
func (a *applier) mkdirAll(p string) (int, error) {
	parts := strings.Split(p, "/")
	prev := -1
	defer func() {
		if prev >= 0 {
			unix.Close(prev)
		}
	}()
	for i := range parts {
		sub := strings.Join(parts[:i+1], "/")
		fd, err := a.openBeneath(sub, unix.O_PATH)
		if err == unix.ENOENT {
			at := a.rootFD
			if prev >= 0 {
				at = prev
			}
			if err := unix.Mkdirat(at, parts[i], 0o755); err != nil && err != unix.EEXIST {
				return -1, err
			}
			fd, err = a.openBeneath(sub, unix.O_PATH)
		}
		if err != nil {
			return -1, err
		}
		if prev >= 0 {
			unix.Close(prev)
		}
		prev = fd
	}
	fd := prev
	prev = -1
	return fd, nil
}

// procPath names the entry base of the directory open as fd, for the calls
// that have no *at form.
func procPath(fd int, base string) string {
	return "/proc/self/fd/" + strconv.Itoa(fd) + "/" + base
}

// create runs mk, and if something is already in the way, removes it and
// runs mk again.
func (a *applier) create(pfd int, base string, mk func() error) error {
	err := mk()
	if err != unix.EEXIST {
		return err
	}
	if err := a.remove(pfd, base); err != nil {
		return err
	}
	return mk()
}

// remove deletes base, whatever it is, from the directory pfd.
func (a *applier) remove(pfd int, base string) error {
	a.cacheStale = true
	err := unix.Unlinkat(pfd, base, 0)
	if err == unix.EISDIR {
		return os.RemoveAll(procPath(pfd, base))
	}
	if err == unix.ENOENT {
		return nil
	}
	return err
}

// mkdir creates the directory base, or keeps the one already there.
func (a *applier) mkdir(pfd int, base string) error {
	err := unix.Mkdirat(pfd, base, 0o700)
	if err != unix.EEXIST {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return nil
	}
	return a.create(pfd, base, func() error { return unix.Mkdirat(pfd, base, 0o700) })
}

func (a *applier) rootDir(hdr *tar.Header) error {
	fd := a.rootFD
	if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
		return fmt.Errorf("layer entry %q: %w", hdr.Name, err)
	}
	if err := unix.Fchmod(fd, uint32(hdr.Mode)&0o7777); err != nil {
		return fmt.Errorf("layer entry %q: %w", hdr.Name, err)
	}
	for name, value := range xattrs(hdr) {
		if err := unix.Fsetxattr(fd, name, []byte(value), 0); err != nil {
			return fmt.Errorf("layer entry %q: set xattr %s: %w", hdr.Name, name, err)
		}
	}
	a.dirTimes["."] = times(hdr)
	return nil
}

// metadata sets the owner, mode, xattrs and times of a non-regular entry.
func (a *applier) metadata(hdr *tar.Header, p string, pfd int, base string, mode uint32) error {
	if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	symlink := hdr.Typeflag == tar.TypeSymlink
	if !symlink {
		if err := unix.Fchmodat(pfd, base, mode, 0); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	for name, value := range xattrs(hdr) {
		err := unix.Lsetxattr(procPath(pfd, base), name, []byte(value), 0)
		if err != nil && !(symlink && err == unix.EPERM) {
			return fmt.Errorf("set xattr %s: %w", name, err)
		}
	}
	ts := times(hdr)
	if hdr.Typeflag == tar.TypeDir {
		a.dirTimes[p] = ts
		return nil
	}
	if err := unix.UtimesNanoAt(pfd, base, ts[:], unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

// regular writes a regular file, leaving holes where the content has whole
// blocks of zeros.
func (a *applier) regular(hdr *tar.Header, pfd int, base string, mode uint32) error {
	var fd int
	err := a.create(pfd, base, func() error {
		var err error
		fd, err = unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		return err
	})
	if err != nil {
		return fmt.Errorf("layer entry %q: %w", hdr.Name, err)
	}
	defer unix.Close(fd)
	if err := a.copyData(fd, hdr.Size); err != nil {
		return fmt.Errorf("layer entry %q: %w", hdr.Name, err)
	}
	if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
		return fmt.Errorf("layer entry %q: chown: %w", hdr.Name, err)
	}
	if err := unix.Fchmod(fd, mode); err != nil {
		return fmt.Errorf("layer entry %q: chmod: %w", hdr.Name, err)
	}
	for name, value := range xattrs(hdr) {
		if err := unix.Fsetxattr(fd, name, []byte(value), 0); err != nil {
			return fmt.Errorf("layer entry %q: set xattr %s: %w", hdr.Name, name, err)
		}
	}
	ts := times(hdr)
	if err := unix.UtimesNanoAt(pfd, base, ts[:], unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("layer entry %q: set times: %w", hdr.Name, err)
	}
	return nil
}

// holeBlock is the granularity at which runs of zeros become holes.
const holeBlock = 4096

var zeroBlock [holeBlock]byte

// copyData copies size bytes of the current entry into fd, skipping whole
// blocks of zeros so that they stay holes.
func (a *applier) copyData(fd int, size int64) error {
	var off, end int64 // end: the end of the last write
	for off < size {
		n := int(min(int64(len(a.buf)), size-off))
		if _, err := io.ReadFull(a.tr, a.buf[:n]); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		chunk := a.buf[:n]
		for len(chunk) > 0 {
			// Skip a run of zero blocks, then write a run of data blocks.
			z := 0
			for z < len(chunk) {
				b := min(holeBlock, len(chunk)-z)
				if !bytes.Equal(chunk[z:z+b], zeroBlock[:b]) {
					break
				}
				z += b
			}
			off += int64(z)
			chunk = chunk[z:]
			d := 0
			for d < len(chunk) {
				b := min(holeBlock, len(chunk)-d)
				if bytes.Equal(chunk[d:d+b], zeroBlock[:b]) {
					break
				}
				d += b
			}
			if d > 0 {
				if err := pwriteAll(fd, chunk[:d], off); err != nil {
					return err
				}
				off += int64(d)
				end = off
				chunk = chunk[d:]
			}
		}
	}
	if end < size {
		if err := unix.Ftruncate(fd, size); err != nil {
			return fmt.Errorf("truncate: %w", err)
		}
	}
	return nil
}

func pwriteAll(fd int, p []byte, off int64) error {
	for len(p) > 0 {
		n, err := unix.Pwrite(fd, p, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("write: %w", err)
		}
		p = p[n:]
		off += int64(n)
	}
	return nil
}

// xattrs returns the extended attributes of an entry, without the ones
// overlayfs reads: those are the snapshotter's to set, never a layer's.
func xattrs(hdr *tar.Header) map[string]string {
	var m map[string]string
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, paxXattr)
		if !ok || strings.HasPrefix(name, "trusted.overlay.") {
			continue
		}
		if m == nil {
			m = make(map[string]string)
		}
		m[name] = v
	}
	return m
}

const paxXattr = "SCHILY.xattr."

func times(hdr *tar.Header) [2]unix.Timespec {
	atime := hdr.AccessTime
	if atime.IsZero() {
		atime = hdr.ModTime
	}
	return [2]unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
}

// whiteout handles a `.wh.` entry named name in the directory dir.
func (a *applier) whiteout(name, dir, base string) error {
	if base == whiteoutOpaque {
		if a.mode == WhiteoutOverlay {
			if dir == "." {
				return unix.Fsetxattr(a.rootFD, overlayOpaqueXattr, []byte("y"), 0)
			}
			pfd, err := a.parent(path.Dir(dir), true)
			if err != nil {
				return a.pathErr(name, err)
			}
			if err := a.mkdir(pfd, path.Base(dir)); err != nil {
				return fmt.Errorf("layer entry %q: %w", name, err)
			}
			if err := unix.Lsetxattr(procPath(pfd, path.Base(dir)), overlayOpaqueXattr, []byte("y"), 0); err != nil {
				return fmt.Errorf("layer entry %q: set opaque: %w", name, err)
			}
			return nil
		}
		fd, err := a.parent(dir, true)
		if err != nil {
			return a.pathErr(name, err)
		}
		if err := a.removeLower(fd, dir); err != nil {
			return fmt.Errorf("layer entry %q: %w", name, err)
		}
		return nil
	}

	target := strings.TrimPrefix(base, whiteoutPrefix)
	if target == "" || target == "." || target == ".." {
		return errdefs.InvalidArgument("layer entry %q: bad whiteout name", name)
	}
	if _, ok := a.written[path.Join(dir, target)]; ok {
		return nil // a whiteout hides only what lower layers have
	}
	pfd, err := a.parent(dir, a.mode == WhiteoutOverlay)
	if err == unix.ENOENT {
		return nil // nothing to delete
	}
	if err != nil {
		return a.pathErr(name, err)
	}
	if a.mode == WhiteoutDelete {
		if err := a.remove(pfd, target); err != nil {
			return fmt.Errorf("layer entry %q: %w", name, err)
		}
		return nil
	}
	err = a.create(pfd, target, func() error { return unix.Mknodat(pfd, target, unix.S_IFCHR, 0) })
	if err != nil {
		return fmt.Errorf("layer entry %q: %w", name, err)
	}
	return nil
}

// removeLower empties the directory dir (open as fd) of everything this
// layer did not write, for an opaque whiteout in WhiteoutDelete mode.
func (a *applier) removeLower(fd int, dir string) error {
	dfd, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(dfd), dir)
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return err
	}
	for _, n := range names {
		p := path.Join(dir, n)
		if _, ok := a.written[p]; !ok {
			if err := a.remove(dfd, n); err != nil {
				return err
			}
			continue
		}
		var st unix.Stat_t
		if err := unix.Fstatat(dfd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			cfd, err := unix.Openat(dfd, n, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				return err
			}
			err = a.removeLower(cfd, p)
			unix.Close(cfd)
			if err != nil {
				return err
			}
		}
	}
	return nil
}
