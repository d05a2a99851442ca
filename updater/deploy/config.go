package deploy

import (
	"time"

	"github.com/edgefort/edgefort/keystore"
)

// Config is the updates section of the agent's configuration file: the
// update channel to a Mender server and how Artifacts are installed. The
// agent's config package composes it, applies its defaults and validates
// it with FILE:LINE messages. The device section (device type, identity)
// stays the agent's: it describes the whole node, and the update side
// receives what it needs of it through NodeDeps.
type Config struct {
	// Enabled turns the channel on. Default false.
	Enabled bool `yaml:"enabled"`
	// ServerURL is the Mender server (https). Required when enabled.
	ServerURL string `yaml:"server_url"`
	// TenantToken identifies the tenant on a multi-tenant server.
	TenantToken string `yaml:"tenant_token"`
	// PollInterval is how often to ask for a deployment. Default 30m,
	// Mender's UpdatePollIntervalSeconds.
	PollInterval time.Duration `yaml:"poll_interval"`
	// InventoryInterval is how often to send inventory. Default 8h.
	InventoryInterval time.Duration `yaml:"inventory_interval"`
	// RetryInterval caps retries after a failed call. Default 5m.
	RetryInterval time.Duration `yaml:"retry_interval"`
	// SSL is the mutual-TLS block: the device certificate from a keystore,
	// the server's trust from a truststore plus the system roots.
	SSL keystore.SSL `yaml:"ssl"`
	// VerifyKeys are PEM public keys that artifact signatures are checked
	// against. When any is set, unsigned artifacts are rejected.
	VerifyKeys []string `yaml:"verify_keys"`
	// ModulesDir holds the update modules. Default
	// /usr/share/mender/modules/v3.
	ModulesDir string `yaml:"modules_dir"`
	// Inventory adds attributes to the inventory report.
	Inventory map[string]string `yaml:"inventory"`
	// ScriptsDir holds the node's own state scripts (Idle, Sync and
	// Download states; Artifact scripts come in the Artifact). Default
	// /etc/edgefort/scripts; a missing directory runs none.
	ScriptsDir string `yaml:"scripts_dir"`
	// ModuleTimeout bounds each update module call. Default 4h, Mender's
	// ModuleTimeoutSeconds.
	ModuleTimeout time.Duration `yaml:"module_timeout"`
	// RebootCommand reboots the host for modules that answer
	// NeedsArtifactReboot with Automatic (rootfs images). Empty, the
	// default, refuses such Artifacts with a rollback.
	RebootCommand []string `yaml:"reboot_command"`
	// HealthTimeout is how long a self-updated agent, or the agent of a
	// new root filesystem after its trial boot, has to become ready before
	// the update is rolled back. Default 1m.
	HealthTimeout time.Duration `yaml:"health_timeout"`
	// RootfsPartA and RootfsPartB are the A/B pair of root partitions
	// that rootfs-image Artifacts are written to (the Mender client's
	// RootfsPartA and RootfsPartB): block devices such as /dev/mmcblk0p2,
	// each ending in the partition number the boot loader knows it by.
	// Both or neither; empty, the default, refuses rootfs-image Artifacts.
	RootfsPartA string `yaml:"rootfs_part_a"`
	RootfsPartB string `yaml:"rootfs_part_b"`
	// BootEnv is the boot loader whose environment selects the partition
	// to boot: "uboot" (fw_printenv and fw_setenv) or "grub"
	// (grub-mender-grubenv). Required with the partitions.
	BootEnv string `yaml:"boot_env"`
	// FWEnvConfig is the fw_env.config that fw_printenv and fw_setenv are
	// given (-c) with boot_env uboot. Empty: their default,
	// /etc/fw_env.config.
	FWEnvConfig string `yaml:"fw_env_config"`
	// GRUBEnvDir is grub-mender-grubenv's ENV_DIR, which holds
	// mender_grubenv1/ and mender_grubenv2/, with boot_env grub. Default
	// /boot/efi/EFI/BOOT.
	GRUBEnvDir string `yaml:"grubenv_dir"`
	// RootfsReadBack reads a written root filesystem image back, past the
	// page cache, and checks it against the Artifact's checksum before it
	// may boot. Default false: the stream's checksum is checked as it is
	// written, as the Mender client does.
	RootfsReadBack bool `yaml:"rootfs_read_back"`
	// DownloadRateLimit caps artifact downloads, in bytes per second.
	// Default 0, unlimited.
	DownloadRateLimit int64 `yaml:"download_rate_limit"`
}
