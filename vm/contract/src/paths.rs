//! Where things are in the guest, as both sides must agree: what the
//! packages install, where the canary and the passes keep their files.

/// The canary's state file: in /etc, which every sandbox sees read-only
/// (the reference units hide /var).
pub const CANARY_STATE: &str = "/etc/sandkasten-probe/canary.json";
/// Where the canary's unix sockets live (net.unix-path, net.unix-dgram):
/// where services keep theirs, outside /run.
pub const CANARY_UNIX_DIR: &str = "/var/lib/sandkasten-probe";
/// The probe as installed.
pub const PROBE: &str = "/usr/libexec/sandkasten/sandkasten-probe";
/// The content the servers serve (fs.write-content's target).
pub const CONTENT_DIR: &str = "/usr/share/sandkasten/www";
/// The guest directory the probe passes' output files live in.
pub const OUTPUT_DIR: &str = "/run/sandkasten-matrix";
