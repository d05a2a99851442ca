package main

import (
	"context"
	"crypto"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/edgefort/edgefort/internal/atomicfile"
	"github.com/edgefort/edgefort/updater/artifact"
)

// newArtifactCmd groups the operator commands on Mender Artifacts. They
// mirror mender-artifact's verbs and flags.
func newArtifactCmd() *command {
	return (&command{
		name:  "artifact",
		short: "read, validate and write Mender Artifacts (format 3)",
		long: `Read, validate and write Mender Artifacts (format version 3), the update
files of the update channel. The commands and flags mirror Debian's
mender-artifact 3.9, and what they write that tool accepts.`,
	}).add(newArtifactReadCmd(), newArtifactValidateCmd(), newArtifactWriteCmd())
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// aliasVar registers a repeatable flag under a short and a long name.
func aliasVar(fs *flag.FlagSet, v flag.Value, short, long, usage string) {
	fs.Var(v, long, usage)
	if short != "" {
		fs.Var(v, short, "short for --"+long)
	}
}

func aliasString(fs *flag.FlagSet, p *string, short, long, usage string) {
	fs.StringVar(p, long, "", usage)
	if short != "" {
		fs.StringVar(p, short, "", "short for --"+long)
	}
}

// loadKeys reads verification keys from PEM files.
func loadKeys(paths []string) ([]crypto.PublicKey, error) {
	var keys []crypto.PublicKey
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		k, err := artifact.ParsePublicKeyPEM(b)
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", p, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// fileResult is one payload file as the reader streamed it.
type fileResult struct {
	f   artifact.File
	err error // the stream's error: checksum mismatch, truncation
}

// listingInstaller reads every file to its end, keeps nothing, and
// records each file with its outcome.
type listingInstaller struct {
	files []fileResult
}

func (l *listingInstaller) Store(f *artifact.File, r io.Reader) error {
	_, err := io.Copy(io.Discard, r) // r's WriteTo moves it with a 1 MiB buffer
	l.files = append(l.files, fileResult{f: *f, err: err})
	return err
}

func (l *listingInstaller) Verified(*artifact.File) error { return nil }

// readArtifact reads the Artifact at path with the keys given into inst.
// The header is nil if the error came before it was verified.
func readArtifact(path string, keyFiles []string, inst artifact.Installer) (*artifact.Header, error) {
	keys, err := loadKeys(keyFiles)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := artifact.NewReader(f, artifact.Options{Keys: keys, AllAugments: true})
	h, err := r.Header()
	if err != nil {
		return nil, err
	}
	return h, r.Payloads(inst)
}

func newArtifactReadCmd() *command {
	c := &command{
		name:  "read",
		args:  "FILE",
		short: "print an Artifact's headers, provides/depends, payload files and signature status",
		long: `Print an Artifact's headers, provides and depends, state scripts, payload
files with sizes and SHA-256 checksums, and its signature status. Every file
is read and checked against the manifest. With --key the signature must
verify (several keys: any one). Exit status 1 if anything fails to verify.`,
	}
	var keys listFlag
	aliasVar(c.fs(), &keys, "k", "key", "`PUB` key (PEM) to verify the signature with; repeatable")
	c.exec = func(ctx context.Context, st streams, args []string) error {
		if err := c.wantArgs(args, 1); err != nil {
			return err
		}
		inst := &listingInstaller{}
		h, err := readArtifact(args[0], keys, inst)
		if h == nil {
			return err
		}
		printHeader(st.stdout, h, keys)
		printFiles(st.stdout, inst.files, err)
		return err
	}
	return c
}

func newArtifactValidateCmd() *command {
	c := &command{
		name:  "validate",
		args:  "FILE",
		short: "check every checksum and, with --key, the signature",
		long: `Check an Artifact: member order, the version and header checksums, every
payload file's checksum, that every manifest entry is present and no file is
unlisted, and with --key that the signature verifies (several keys: any
one). Exit status 0 only if all of that holds; otherwise the reason is
printed and the status is 1.`,
	}
	var keys listFlag
	aliasVar(c.fs(), &keys, "k", "key", "`PUB` key (PEM) to verify the signature with; repeatable")
	c.exec = func(ctx context.Context, st streams, args []string) error {
		if err := c.wantArgs(args, 1); err != nil {
			return err
		}
		inst := &listingInstaller{}
		h, err := readArtifact(args[0], keys, inst)
		if err != nil {
			return fmt.Errorf("%s: not valid: %w", args[0], err)
		}
		var size int64
		for _, f := range inst.files {
			size += f.f.Size
		}
		fmt.Fprintf(st.stdout, "%s: valid: artifact %q, %d payload file(s), %d bytes, signature: %s\n",
			args[0], h.Name, len(inst.files), size, signatureLine(h, keys))
		return nil
	}
	return c
}

func signatureLine(h *artifact.Header, keys []string) string {
	switch h.Signature {
	case artifact.SignedVerified:
		return "verified with " + keys[h.SignatureKey]
	case artifact.SignedUnverified:
		return "signed, not checked (no --key)"
	}
	return "unsigned"
}

func printHeader(w io.Writer, h *artifact.Header, keys []string) {
	tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
	fmt.Fprintf(tw, "Artifact:\t%s (mender format 3, %s)\n", h.Name, h.HeaderMember)
	fmt.Fprintf(tw, "Signature:\t%s\n", signatureLine(h, keys))
	fmt.Fprintf(tw, "Device types:\t%s\n", strings.Join(h.Depends.DeviceTypes, ", "))
	provides := "artifact_name=" + h.Name
	if h.Group != "" {
		provides += ", artifact_group=" + h.Group
	}
	fmt.Fprintf(tw, "Provides:\t%s\n", provides)
	var depends []string
	if len(h.Depends.ArtifactNames) > 0 {
		depends = append(depends, fmt.Sprintf("artifact_name in %q", h.Depends.ArtifactNames))
	}
	if len(h.Depends.ArtifactGroups) > 0 {
		depends = append(depends, fmt.Sprintf("artifact_group in %q", h.Depends.ArtifactGroups))
	}
	fmt.Fprintf(tw, "Depends:\t%s\n", orNone(strings.Join(depends, ", ")))
	var scripts []string
	for _, s := range h.Scripts {
		scripts = append(scripts, s.Name)
	}
	fmt.Fprintf(tw, "State scripts:\t%s\n", orNone(strings.Join(scripts, ", ")))
	tw.Flush()
	for _, p := range h.Payloads {
		typ := p.Type
		if typ == "" {
			typ = "null (empty payload)"
		}
		fmt.Fprintf(w, "\nPayload %04d: %s\n", p.Index, typ)
		tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
		fmt.Fprintf(tw, "  Provides:\t%s\n", orNone(kvList(p.Provides)))
		fmt.Fprintf(tw, "  Depends:\t%s\n", orNone(dependsList(p.Depends)))
		clears := "(absent: all previous provides are cleared)"
		if p.ClearsProvides != nil {
			clears = orNone(strings.Join(p.ClearsProvides, ", "))
		}
		fmt.Fprintf(tw, "  Clears provides:\t%s\n", clears)
		fmt.Fprintf(tw, "  Meta-data:\t%s\n", orNone(string(p.MetaData)))
		if a := p.Augment; a != nil {
			fmt.Fprintf(tw, "  Augment (unsigned):\ttype %s, depends %s, meta-data %s\n", a.Type, orNone(dependsList(a.Depends)), orNone(string(a.MetaData)))
		}
		tw.Flush()
	}
}

func printFiles(w io.Writer, files []fileResult, perr error) {
	if len(files) == 0 && perr == nil {
		fmt.Fprintf(w, "\nFiles: none\n")
		return
	}
	fmt.Fprintf(w, "\nFiles:\n")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  PATH\tSIZE\tSHA-256\tSTATUS")
	for _, r := range files {
		status := "ok"
		switch {
		case r.err != nil:
			status = "FAILED"
		case r.f.Augmented:
			status = "ok (augment, unsigned)"
		}
		fmt.Fprintf(tw, "  %s\t%d\t%x\t%s\n", r.f.Path, r.f.Size, r.f.Checksum, status)
	}
	tw.Flush()
	if perr == nil {
		fmt.Fprintf(w, "\nAll %d file(s) match the manifest.\n", len(files))
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func kvList(m map[string]string) string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, k+"="+m[k])
	}
	return strings.Join(out, ", ")
}

func dependsList(m map[string][]string) string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if v := m[k]; len(v) == 1 {
			out = append(out, k+"="+v[0])
		} else {
			out = append(out, fmt.Sprintf("%s in %q", k, v))
		}
	}
	return strings.Join(out, ", ")
}

func newArtifactWriteCmd() *command {
	return (&command{
		name:  "write",
		short: "write a module-image or rootfs-image Artifact",
		long: `Write an Artifact, as 'mender-artifact write' does: a module-image for an
update module, or a rootfs-image for an A/B root filesystem. The default
provides and clears_provides are mender-artifact's.`,
	}).add(newArtifactWriteImageCmd("module-image"), newArtifactWriteImageCmd("rootfs-image"))
}

// writeFlags are the flags of 'artifact write module-image|rootfs-image'.
type writeFlags struct {
	name, typ, output, key, compression, metaData, group string
	devices, files, provides, depends, scripts           listFlag
	dependsGroups, dependsNames, clears                  listFlag
	defaults                                             artifact.ImageDefaults
}

func newArtifactWriteImageCmd(kind string) *command {
	c := &command{name: kind}
	var wf writeFlags
	fs := c.fs()
	aliasString(fs, &wf.name, "n", "artifact-name", "`NAME` of the Artifact (required)")
	aliasVar(fs, &wf.devices, "t", "device-type", "compatible `DEVICE` type (required; repeatable)")
	if kind == "module-image" {
		c.short = "write an Artifact for an update module (-T)"
		aliasString(fs, &wf.typ, "T", "type", "payload `TYPE`: the update module's name (required)")
		aliasVar(fs, &wf.files, "f", "file", "payload `FILE`; repeatable")
	} else {
		c.short = "write an A/B root filesystem Artifact"
		aliasVar(fs, &wf.files, "f", "file", "root filesystem image `FILE` (required, exactly one)")
		fs.BoolVar(&wf.defaults.NoChecksumProvide, "no-checksum-provide", false, "do not provide rootfs-image.checksum")
	}
	aliasString(fs, &wf.output, "o", "output-path", "`PATH` of the Artifact to write (required)")
	aliasString(fs, &wf.key, "k", "key", "private `KEY` (PEM: RSA or ECDSA P-256) to sign with")
	fs.StringVar(&wf.compression, "compression", "gzip", "`KIND` of compression: gzip, lzma, zstd or none (mender-artifact 3.9 reads no zstd)")
	aliasVar(fs, &wf.provides, "p", "provides", "`KEY:VALUE` added to the payload's provides; repeatable")
	aliasVar(fs, &wf.depends, "d", "depends", "`KEY:VALUE` added to the payload's depends; repeatable (a key given twice lists both values)")
	aliasVar(fs, &wf.scripts, "s", "script", "state script `FILE`, named State_(Enter|Leave|Error)_NN[_desc]; repeatable")
	aliasString(fs, &wf.metaData, "m", "meta-data", "meta-data JSON object `FILE` for the payload")
	aliasString(fs, &wf.group, "g", "provides-group", "`GROUP` the Artifact provides")
	aliasVar(fs, &wf.dependsGroups, "G", "depends-groups", "`GROUP` the device must be in; repeatable")
	aliasVar(fs, &wf.dependsNames, "N", "artifact-name-depends", "`NAME` of an Artifact the device must run; repeatable")
	fs.Var(&wf.clears, "clears-provides", "provides `GLOB` to clear on install; repeatable")
	fs.BoolVar(&wf.defaults.NoSoftwareVersion, "no-default-software-version", false, "do not provide the default software version")
	fs.BoolVar(&wf.defaults.NoClearsProvides, "no-default-clears-provides", false, "do not add the default clears_provides")
	c.exec = func(ctx context.Context, st streams, args []string) error {
		if err := c.wantArgs(args, 0); err != nil {
			return err
		}
		spec, err := wf.spec(kind)
		if err != nil {
			return err
		}
		if err := writeArtifactFile(wf.output, spec); err != nil {
			return err
		}
		signed := "unsigned"
		if spec.Key != nil {
			signed = "signed with " + wf.key
		}
		fmt.Fprintf(st.stdout, "wrote %s: %s %q for %s, %s, %s\n", wf.output, kind, spec.Name,
			strings.Join(spec.Depends.DeviceTypes, ", "), spec.Compression, signed)
		return nil
	}
	return c
}

// spec turns the flags into an artifact.Spec; mistakes are usage errors.
func (wf *writeFlags) spec(kind string) (*artifact.Spec, error) {
	cmd := "artifact write " + kind
	if err := wf.checkRequired(kind, cmd); err != nil {
		return nil, err
	}
	comp, err := artifact.ParseCompression(wf.compression)
	if err != nil {
		return nil, usageError{fmt.Sprintf("%s: --compression: %v", cmd, err)}
	}
	provides, err := keyValues("--provides", wf.provides)
	if err != nil {
		return nil, usageError{cmd + ": " + err.Error()}
	}
	depends, err := keyValues("--depends", wf.depends)
	if err != nil {
		return nil, usageError{cmd + ": " + err.Error()}
	}
	p, err := wf.payload(kind, provides, depends)
	if err != nil {
		return nil, err
	}
	spec := &artifact.Spec{
		Name:        wf.name,
		Group:       wf.group,
		Depends:     artifact.Depends{DeviceTypes: wf.devices, ArtifactNames: wf.dependsNames, ArtifactGroups: wf.dependsGroups},
		Payloads:    []artifact.PayloadSpec{p},
		Compression: comp,
		TempDir:     filepath.Dir(wf.output),
	}
	if err := wf.readScriptsAndKey(spec); err != nil {
		return nil, err
	}
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	return spec, nil
}

// checkRequired names every required flag missing, in one usage error.
func (wf *writeFlags) checkRequired(kind, cmd string) error {
	var missing []string
	if wf.name == "" {
		missing = append(missing, "--artifact-name")
	}
	if len(wf.devices) == 0 {
		missing = append(missing, "--device-type")
	}
	if wf.output == "" {
		missing = append(missing, "--output-path")
	}
	if kind == "module-image" && wf.typ == "" {
		missing = append(missing, "--type")
	}
	if kind == "rootfs-image" && len(wf.files) != 1 {
		missing = append(missing, "exactly one --file")
	}
	if len(missing) > 0 {
		return usageError{fmt.Sprintf("%s: %s required (see 'edgefort %s --help')", cmd, strings.Join(missing, ", "), cmd)}
	}
	return nil
}

// payload is the one payload: its type's defaults, then the flags'
// provides, depends, clears_provides, files and meta-data.
func (wf *writeFlags) payload(kind string, provides, depends map[string][]string) (artifact.PayloadSpec, error) {
	var p artifact.PayloadSpec
	if kind == "module-image" {
		p = artifact.ModuleImage(wf.typ, wf.name, wf.defaults)
	} else {
		p = artifact.RootfsImage(wf.name, wf.defaults)
	}
	for k, v := range provides {
		p.Provides[k] = v[len(v)-1]
	}
	if len(depends) > 0 {
		p.Depends = depends
	}
	if len(wf.clears) > 0 {
		p.ClearsProvides = append(slices.Clone([]string(wf.clears)), p.ClearsProvides...)
	}
	for _, path := range wf.files {
		src, err := artifact.FileSource(path)
		if err != nil {
			return p, err
		}
		p.Files = append(p.Files, src)
	}
	if wf.metaData != "" {
		var err error
		if p.MetaData, err = os.ReadFile(wf.metaData); err != nil {
			return p, err
		}
	}
	return p, nil
}

// readScriptsAndKey reads the state scripts and the signing key into spec.
func (wf *writeFlags) readScriptsAndKey(spec *artifact.Spec) error {
	for _, path := range wf.scripts {
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		spec.Scripts = append(spec.Scripts, artifact.Script{Name: filepath.Base(path), Data: data})
	}
	if wf.key == "" {
		return nil
	}
	b, err := os.ReadFile(wf.key)
	if err != nil {
		return err
	}
	if spec.Key, err = artifact.ParsePrivateKeyPEM(b); err != nil {
		return fmt.Errorf("key %s: %w", wf.key, err)
	}
	return nil
}

// keyValues parses KEY:VALUE flags; a key given twice collects its values.
func keyValues(flagName string, list []string) (map[string][]string, error) {
	out := map[string][]string{}
	for _, kv := range list {
		k, v, ok := strings.Cut(kv, ":")
		if !ok || k == "" {
			return nil, fmt.Errorf("%s %q: want KEY:VALUE", flagName, kv)
		}
		out[k] = append(out[k], v)
	}
	return out, nil
}

// writeArtifactFile writes the Artifact next to path and renames it into
// place once complete, so that a failed write leaves no partial Artifact.
func writeArtifactFile(path string, spec *artifact.Spec) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, atomicfile.TempPrefix+base+"-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := artifact.Write(f, spec); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	return atomicfile.SyncDir(dir)
}
