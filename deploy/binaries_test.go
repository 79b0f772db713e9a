package deploy

import (
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The Raspberry Pi builds of "make pi": static executables for the right
// machine, built without cgo and stamped with the commit. The Makefile's
// deploy-test target runs "make pi" first.
func TestPiBinaries(t *testing.T) {
	for _, tc := range []struct {
		file    string
		machine elf.Machine
		class   elf.Class
		goarch  string
		goarm   string
		qemu    string
		goos    string
	}{
		{"fluxo-linux-arm64", elf.EM_AARCH64, elf.ELFCLASS64, "arm64", "", "qemu-aarch64", "linux/arm64"},
		{"fluxo-linux-armv7", elf.EM_ARM, elf.ELFCLASS32, "arm", "7", "qemu-arm", "linux/arm"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join(repoRoot, "dist", tc.file)
			fi, err := os.Stat(path)
			if err != nil {
				t.Skipf("no dist/%s (make pi builds it; make deploy-test runs make pi): %v", tc.file, err)
			}
			t.Logf("dist/%s: %d bytes (%.1f MiB)", tc.file, fi.Size(), float64(fi.Size())/(1<<20))

			f, err := elf.Open(path)
			if err != nil {
				t.Fatalf("dist/%s: got %v, want an ELF file", tc.file, err)
			}
			defer f.Close()
			if f.Machine != tc.machine {
				t.Errorf("machine: got %v, want %v", f.Machine, tc.machine)
			}
			if f.Class != tc.class {
				t.Errorf("class: got %v, want %v", f.Class, tc.class)
			}
			if f.Type != elf.ET_EXEC {
				t.Errorf("type: got %v, want %v (a static, non-PIE executable)", f.Type, elf.ET_EXEC)
			}
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
					t.Errorf("program header %v: got one, want none (a static binary needs no loader)", p.Type)
				}
			}
			for _, name := range []string{".interp", ".dynamic", ".dynsym"} {
				if f.Section(name) != nil {
					t.Errorf("section %s: got one, want none", name)
				}
			}
			if libs, err := f.ImportedLibraries(); err == nil && len(libs) > 0 {
				t.Errorf("imported libraries: got %v, want none", libs)
			}

			info, err := buildinfo.ReadFile(path)
			if err != nil {
				t.Fatalf("build info: %v", err)
			}
			settings := make(map[string]string)
			for _, s := range info.Settings {
				settings[s.Key] = s.Value
			}
			for key, want := range map[string]string{
				"CGO_ENABLED": "0",
				"GOOS":        "linux",
				"GOARCH":      tc.goarch,
				"-trimpath":   "true",
			} {
				if got := settings[key]; got != want {
					t.Errorf("build setting %s: got %q, want %q", key, got, want)
				}
			}
			if tc.goarm != "" {
				if got := settings["GOARM"]; got != tc.goarm {
					t.Errorf("build setting GOARM: got %q, want %q", got, tc.goarm)
				}
			}

			// The Makefile stamps the commit (git rev-parse --short HEAD).
			if commit := gitCommit(t); commit != "" {
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Contains(b, []byte(commit)) {
					t.Errorf("commit stamp: got no %q in dist/%s, want it (stale build? run make pi)", commit, tc.file)
				}
			}

			// Where qemu's user-mode emulator is installed, run it.
			qemu, err := exec.LookPath(tc.qemu)
			if err != nil {
				t.Logf("%s not installed (apt-get install qemu-user): not running dist/%s", tc.qemu, tc.file)
				return
			}
			out, err := exec.Command(qemu, path, "version").CombinedOutput()
			if err != nil {
				t.Fatalf("%s dist/%s version: %v\n%s", tc.qemu, tc.file, err, out)
			}
			if !strings.Contains(string(out), "platform: "+tc.goos) {
				t.Errorf("fluxo version: got\n%s\nwant platform: %s", out, tc.goos)
			}
			if strings.Contains(string(out), "built:    unknown") {
				t.Errorf("fluxo version: got\n%s\nwant a build date stamped in", out)
			}
		})
	}
}

// gitCommit returns the short commit of the repository's HEAD, or "" when
// git cannot tell.
func gitCommit(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("git", "rev-parse", "--short", "HEAD")
	cmd.Dir = repoRoot
	out, err := cmd.Output()
	if err != nil {
		t.Logf("git rev-parse: %v: not checking the commit stamp", err)
		return ""
	}
	return strings.TrimSpace(string(out))
}
