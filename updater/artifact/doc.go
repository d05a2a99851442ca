// Package artifact reads and writes Mender Artifacts, format version 3: the
// update files the Mender server hands to devices and that Debian's
// mender-artifact 3.9 tool writes and checks.
//
// # What it owns
//
// An Artifact is a plain tar whose members come in a fixed order (see
// format.go): version, manifest, manifest.sig (optional), manifest-augment
// (optional), header.tar[.gz|.xz|.zst], header-augment.tar[...] (optional),
// then one data/NNNN.tar[...] per payload. The manifest lists the SHA-256 of
// version, of the header member as stored, and of every payload file's
// uncompressed content as data/NNNN/<name>; manifest.sig signs the manifest
// bytes (RSA PKCS#1 v1.5 or ECDSA P-256, both over SHA-256).
//
// The package gives:
//   - [Reader]: a streaming reader that reads the outer tar once, front to
//     back, verifies the signature and the header before it returns the
//     [Header], and then hands each payload file to an [Installer] while
//     hashing it. Memory stays flat whatever the payload size: nothing is
//     buffered whole except the (capped) header.
//   - [Write]: a writer producing module-image, rootfs-image and bootstrap
//     Artifacts that mender-artifact accepts, signed or not, with
//     mender-artifact's default provides from [ModuleImage] and
//     [RootfsImage].
//   - [CheckDepends] and [NewProvides]: the depends / provides /
//     clears_provides rules the device applies before install and on commit.
//   - Key parsing, signing and verification ([ParsePublicKeyPEM],
//     [ParsePrivateKeyPEM], [Sign], [VerifySignature]) with the standard
//     library only.
//
// It does not run update modules or state scripts, talk to a server, or
// persist anything: package updater does that with what this package hands
// it.
//
// # How an installer consumes payloads safely
//
// Everything that arrives before a payload file's last byte is untrusted.
// The order of events for one Artifact is:
//
//  1. [Reader.Header] reads version, manifest and signature, verifies the
//     signature (when keys are configured an unsigned Artifact is refused
//     here, before its header is even read) and the header checksum, and
//     returns the parsed header. No payload byte has been read yet. The
//     caller now checks depends ([CheckDepends]), the server's answer and
//     picks an installer per payload type; returning early aborts cleanly.
//  2. [Reader.Payloads] streams each payload file to [Installer.Store]
//     together with a reader that hashes what flows through it. The
//     installer must write the bytes only somewhere inactive (a staging
//     file, the inactive partition, an update module's stream) and read to
//     io.EOF. If the bytes do not match the manifest, the final Read returns
//     an error wrapping [ErrChecksum] instead of io.EOF; Store should return
//     it, and Payloads fails whatever Store returns.
//  3. Only when the whole Artifact has checked out (every file's checksum,
//     every manifest entry present, no unlisted file, nothing after the data)
//     does the reader call [Installer.Verified] for each stored file, in
//     order. Until then a file must not be activated, executed or made
//     visible; after it, activation still belongs to the ArtifactInstall
//     step of the update, which runs once Payloads has returned nil.
//
// A failure at any point returns an error and no Verified call follows, so
// an installer that only activates what was Verified never activates
// tampered, truncated or incomplete data.
//
// The signature covers the files' checksums, not the compressed data
// members, so a member's compressed bytes are unsigned. The reader reads
// each member as one compressed stream (one gzip member, one xz stream
// whose every block's dictionary is checked, zstd frames) and bounds what
// it decompresses to by what its tar declares: the files' sizes, 64 KiB of
// headers per entry, and 64 KiB of zero padding after the end; anything
// else is refused as a malformed Artifact before any Verified call.
//
// State scripts (Header.Scripts) come from the header, which is verified
// before Header returns; augmented headers and files (Payload.Augment,
// File.Augmented) are not covered by the signature and are accepted only for
// the payload types listed in Options.AugmentTypes.
package artifact
