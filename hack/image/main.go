// Command image writes the operator's container image as an OCI image layout in one tar
// file, without a Docker daemon or a base image: `make image` runs it on the static binary
// it has just built.
//
//	go run ./hack/image --binary bin/image/fragile --out bin/fragile-image.tar
//
// The image is two layers, from scratch. The first holds what a static Go binary needs from
// an operating system: /etc/passwd and /etc/group naming the non-root user 65532 (the user
// distroless images use), its home directory, a world-writable /tmp, and the CA bundle so that
// https:// model URLs verify. The second holds /usr/local/bin/fragile, so a rebuild of the
// binary changes only that layer. The image runs as 65532:65532 with `fragile manager` as
// its default command, like the Dockerfile's.
//
// Every timestamp is fixed, so the same binary gives byte-identical layers. The tar also
// carries a Docker-style manifest.json pointing at the same blobs (as `docker save` writes
// since Docker 25), so `docker load`, `podman load` and `crane push` all accept it.
package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	// uid and gid of the image's user: not root, and the number distroless's nonroot uses, so
	// that runAsNonRoot policies and volume permissions written for those images apply.
	uid  = 65532
	user = "nonroot"
	// binaryPath is where the binary lives and the image's entrypoint.
	binaryPath = "/usr/local/bin/fragile"
)

// epoch is every file's and the config's timestamp: reproducible builds, no build time leaks.
var epoch = time.Unix(0, 0).UTC()

func main() {
	binary := flag.String("binary", "", "static linux fragile binary to put in the image (required)")
	out := flag.String("out", "bin/fragile-image.tar", "OCI image tar file to write")
	tag := flag.String("tag", "ghcr.io/fragile-operator/fragile:dev", "image reference recorded in the tar")
	caCerts := flag.String("ca-certs", "/etc/ssl/certs/ca-certificates.crt", "CA bundle to include (for https:// model URLs)")
	arch := flag.String("arch", runtime.GOARCH, "architecture the binary was built for")
	flag.Parse()
	if err := build(*binary, *out, *tag, *caCerts, *arch); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func build(binary, out, tag, caCerts, arch string) error {
	if binary == "" {
		return errors.New("--binary is required")
	}
	bin, err := os.ReadFile(binary)
	if err != nil {
		return fmt.Errorf("the binary: %w", err)
	}
	certs, err := os.ReadFile(caCerts)
	if err != nil {
		return fmt.Errorf("the CA bundle (install Debian's ca-certificates or pass --ca-certs): %w", err)
	}
	base, err := layer([]entry{
		{name: "etc/", mode: 0o755},
		{name: "etc/passwd", mode: 0o644, data: fmt.Appendf(nil,
			"root:x:0:0:root:/root:/sbin/nologin\n%s:x:%d:%d:%s:/home/%s:/sbin/nologin\n", user, uid, uid, user, user)},
		{name: "etc/group", mode: 0o644, data: fmt.Appendf(nil, "root:x:0:\n%s:x:%d:\n", user, uid)},
		{name: "etc/ssl/", mode: 0o755},
		{name: "etc/ssl/certs/", mode: 0o755},
		{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, data: certs},
		{name: "home/", mode: 0o755},
		{name: "home/" + user + "/", mode: 0o700, owner: uid},
		{name: "tmp/", mode: 0o1777},
	})
	if err != nil {
		return err
	}
	app, err := layer([]entry{
		{name: "usr/", mode: 0o755},
		{name: "usr/local/", mode: 0o755},
		{name: "usr/local/bin/", mode: 0o755},
		{name: binaryPath[1:], mode: 0o755, data: bin},
	})
	if err != nil {
		return err
	}

	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	if img, err = mutate.AppendLayers(img, base, app); err != nil {
		return err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", arch
	cfg.Created = v1.Time{Time: epoch}
	cfg.Config = v1.Config{
		User:       fmt.Sprintf("%d:%d", uid, uid),
		Entrypoint: []string{binaryPath},
		Cmd:        []string{"manager"},
		Env:        []string{"PATH=/usr/local/bin", "HOME=/home/" + user, "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"},
		WorkingDir: "/home/" + user,
		Labels: map[string]string{
			"org.opencontainers.image.source":      "https://github.com/fragile-operator/fragile-operator",
			"org.opencontainers.image.description": "fragile-operator: the manager and the commands its Jobs run",
		},
	}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return err
	}

	dir, err := os.MkdirTemp("", "fragile-image")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": tag,
		"io.containerd.image.name":          tag,
	})); err != nil {
		return err
	}
	if err := writeDockerManifest(dir, img, tag); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	if err := tarDir(dir, out); err != nil {
		return err
	}
	digest, _ := img.Digest()
	fmt.Fprintf(os.Stderr, "wrote %s: %s %s, %d-byte binary\n", out, tag, digest, len(bin))
	return nil
}

// entry is one file or directory (name ending in "/") of a layer, owned by root unless owner
// says otherwise.
type entry struct {
	name  string
	mode  int64
	owner int
	data  []byte
}

// layer is a gzip-compressed OCI layer holding entries, in order.
func layer(entries []entry) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, Uid: e.owner, Gid: e.owner, ModTime: epoch, Format: tar.FormatPAX}
		if e.name[len(e.name)-1] == '/' {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

// writeDockerManifest adds the manifest.json of `docker save` next to the OCI layout, pointing
// at the same blobs.
func writeDockerManifest(dir string, img v1.Image, tag string) error {
	cfg, err := img.ConfigName()
	if err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	blob := func(h v1.Hash) string { return "blobs/" + h.Algorithm + "/" + h.Hex }
	m := struct {
		Config   string
		RepoTags []string
		Layers   []string
	}{Config: blob(cfg), RepoTags: []string{tag}}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		m.Layers = append(m.Layers, blob(d))
	}
	data, err := json.Marshal([]any{m})
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "manifest.json"), data, 0o644)
}

// tarDir writes the files under dir into the tar file out, in name order with fixed
// timestamps, so that the same image gives the same bytes.
func tarDir(dir, out string) error {
	var names []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		names = append(names, path)
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(names)
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	for _, path := range names {
		info, err := os.Stat(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		h := &tar.Header{Name: filepath.ToSlash(rel), Mode: 0o644, ModTime: epoch, Typeflag: tar.TypeReg, Size: info.Size()}
		if info.IsDir() {
			h.Name, h.Mode, h.Typeflag, h.Size = h.Name+"/", 0o755, tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if !info.IsDir() {
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if _, err := tw.Write(data); err != nil {
				return err
			}
		}
	}
	if err := tw.Close(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
