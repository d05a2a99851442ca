package artifact

// The payload defaults of mender-artifact's "write rootfs-image" and
// "write module-image", so that Artifacts written here are installed and
// tracked the same way by Mender clients.

// ImageDefaults switch off parts of mender-artifact's defaults, as its
// flags of the same names do. The zero value keeps them all.
type ImageDefaults struct {
	// NoSoftwareVersion: no rootfs-image[.TYPE].version provide
	// (--no-default-software-version).
	NoSoftwareVersion bool
	// NoClearsProvides: no default clears_artifact_provides
	// (--no-default-clears-provides).
	NoClearsProvides bool
	// NoChecksumProvide: rootfs-image only, no rootfs-image.checksum
	// provide (--no-checksum-provide).
	NoChecksumProvide bool
}

// RootfsImage is a rootfs-image payload for an Artifact called name:
// provides rootfs-image.version=name and rootfs-image.checksum=<SHA-256 of
// the image>, and clears artifact_group, rootfs_image_checksum and
// rootfs-image.*. Add the one image file to Files.
func RootfsImage(name string, d ImageDefaults) PayloadSpec {
	p := PayloadSpec{Type: "rootfs-image", Provides: map[string]string{}}
	if !d.NoSoftwareVersion {
		p.Provides["rootfs-image.version"] = name
	}
	if !d.NoChecksumProvide {
		p.ChecksumProvide = "rootfs-image.checksum"
	}
	if !d.NoClearsProvides {
		p.ClearsProvides = []string{"artifact_group", "rootfs_image_checksum", "rootfs-image.*"}
	}
	return p
}

// ModuleImage is a payload for update module typ in an Artifact called
// name: provides rootfs-image.<typ>.version=name and clears
// rootfs-image.<typ>.*.
func ModuleImage(typ, name string, d ImageDefaults) PayloadSpec {
	p := PayloadSpec{Type: typ, Provides: map[string]string{}}
	if !d.NoSoftwareVersion {
		p.Provides["rootfs-image."+typ+".version"] = name
	}
	if !d.NoClearsProvides {
		p.ClearsProvides = []string{"rootfs-image." + typ + ".*"}
	}
	return p
}
