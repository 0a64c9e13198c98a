package image

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/fragile-operator/fragile-operator/internal/zoo"
	"github.com/fragile-operator/fragile-operator/pkg/contract"
)

const repoRoot = "../.."

// imageTar is $FRAGILE_IMAGE_TAR (CI points it at the tar `make image` wrote), else a tar
// built now into a temporary directory.
func imageTar(t *testing.T) string {
	if p := os.Getenv("FRAGILE_IMAGE_TAR"); p != "" {
		return p
	}
	dir := t.TempDir()
	cmd := exec.Command("make", "--no-print-directory", "image", "BIN="+dir)
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}
	return filepath.Join(dir, "fragile-image.tar")
}

// untar extracts the tar stream r into dir: regular files and directories only, which is all
// an image built from scratch has; anything else, or a path leaving dir, fails the test.
func untar(t *testing.T, r io.Reader, dir string) {
	t.Helper()
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, h.Name)
		if !strings.HasPrefix(path, filepath.Clean(dir)+string(os.PathSeparator)) {
			t.Fatalf("tar entry %q leaves the directory", h.Name)
		}
		mode := os.FileMode(h.Mode).Perm()
		if h.Mode&0o1000 != 0 {
			mode |= os.ModeSticky
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(path, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(f, tr); err != nil {
				t.Fatal(err)
			}
			f.Close()
		default:
			t.Fatalf("tar entry %q has type %c; the image should hold only files and directories", h.Name, h.Typeflag)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		if os.Geteuid() == 0 {
			if err := os.Lchown(path, h.Uid, h.Gid); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestImage unpacks the image and runs it as a container runtime would: the configured user,
// the entrypoint, from the image's root filesystem. As root it chroots into that filesystem
// and drops to the image's user, so the binary sees only what the image holds; otherwise it
// runs the unpacked binary directly.
func TestImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the image and watermarks mnist-7 (a minute)")
	}
	archive := imageTar(t)
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	layoutDir := t.TempDir()
	untar(t, f, layoutDir)

	// The OCI layout: one image, tagged, with the Docker manifest.json beside it.
	idx, err := layout.ImageIndexFromPath(layoutDir)
	if err != nil {
		t.Fatalf("%s is not an OCI image layout: %v", archive, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 || im.Manifests[0].Annotations["org.opencontainers.image.ref.name"] == "" {
		t.Fatalf("index %+v: want one tagged image", im.Manifests)
	}
	if _, err := os.Stat(filepath.Join(layoutDir, "manifest.json")); err != nil {
		t.Errorf("no Docker manifest.json for docker load: %v", err)
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}

	// A non-root user, named by number (Kubernetes' runAsNonRoot can check only numbers),
	// that the image's /etc/passwd knows.
	uidText, gidText, _ := strings.Cut(cfg.Config.User, ":")
	uid, err := strconv.Atoi(uidText)
	if err != nil || uid == 0 {
		t.Fatalf("image user %q: want a numeric non-root uid", cfg.Config.User)
	}
	gid, err := strconv.Atoi(gidText)
	if err != nil || gid == 0 {
		t.Fatalf("image user %q: want a numeric non-root gid", cfg.Config.User)
	}
	if cfg.OS != "linux" || len(cfg.Config.Entrypoint) != 1 || strings.Join(cfg.Config.Cmd, " ") != "manager" {
		t.Errorf("os %q, entrypoint %q, cmd %q: want linux, one binary, manager", cfg.OS, cfg.Config.Entrypoint, cfg.Config.Cmd)
	}

	rootfs := t.TempDir()
	flat := mutate.Extract(img)
	untar(t, flat, rootfs)
	flat.Close()
	passwd, err := os.ReadFile(filepath.Join(rootfs, "etc/passwd"))
	if err != nil || !bytes.Contains(passwd, []byte(":x:"+uidText+":"+gidText+":")) {
		t.Errorf("/etc/passwd (%v) has no entry for %s:\n%s", err, cfg.Config.User, passwd)
	}
	entrypoint := cfg.Config.Entrypoint[0]
	if info, err := os.Stat(filepath.Join(rootfs, entrypoint)); err != nil || info.Mode().Perm()&0o111 == 0 {
		t.Fatalf("entrypoint %s: %v, not an executable in the image", entrypoint, err)
	}

	chroot := os.Geteuid() == 0
	if !chroot {
		t.Log("not root: running the unpacked binary without chroot or user switch")
	}
	work := "/tmp/fragile-image-test"
	if err := os.MkdirAll(filepath.Join(rootfs, work), 0o755); err != nil {
		t.Fatal(err)
	}
	if chroot {
		if err := os.Chown(filepath.Join(rootfs, work), uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	// inImage runs the entrypoint with args in the image, returning its exit status and output.
	inImage := func(args ...string) (int, string) {
		t.Helper()
		for i, a := range args {
			if strings.HasPrefix(a, work) && !chroot {
				args[i] = filepath.Join(rootfs, a)
			}
		}
		cmd := exec.Command(filepath.Join(rootfs, entrypoint), args...)
		cmd.Env = cfg.Config.Env
		if chroot {
			cmd.Path = entrypoint
			cmd.Dir = "/"
			cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: rootfs, Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatalf("fragile %s did not run: %v", strings.Join(args, " "), err)
		}
		return cmd.ProcessState.ExitCode(), out.String()
	}

	code, out := inImage("--help")
	if code != 0 || !strings.Contains(out, "manager") || !strings.Contains(out, "verify") {
		t.Fatalf("fragile --help: exit %d\n%s", code, out)
	}
	if strings.Contains(out, "attack") || strings.Contains(out, "eval") {
		t.Errorf("the image's fragile offers lab commands:\n%s", out)
	}

	model, err := zoo.MNIST7()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, work, "mnist-7.onnx"), model, 0o644); err != nil {
		t.Fatal(err)
	}
	at := func(name string) string { return work + "/" + name }
	if code, out := inImage("keygen", "--out", at("key")); code != 0 {
		t.Fatalf("keygen: exit %d\n%s", code, out)
	}
	if code, out := inImage("watermark", "--model", at("mnist-7.onnx"), "--key", at("key"), "--out", at("bundle"),
		"--input-range", "0,255", "--triggers", "20"); code != 0 {
		t.Fatalf("watermark: exit %d\n%s", code, out)
	}
	code, out = inImage("verify", "--model", at("mnist-7.onnx"), "--bundle", at("bundle"), "--key", at("key"),
		"--report", at("verify.json"))
	if code != 0 {
		t.Fatalf("verify: exit %d, want 0 (intact)\n%s", code, out)
	}
	var rep contract.VerifyReport
	data, err := os.ReadFile(filepath.Join(rootfs, at("verify.json")))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &rep); err != nil || rep.Result != contract.ResultIntact || rep.Total != 20 || !rep.DigestMatches {
		t.Errorf("verify report %s (%v): want intact, 20 triggers, digest matching", data, err)
	}
}
