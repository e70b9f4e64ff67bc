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
/// The lockdown wrapper as installed (the package's `sandkasten-lockdown`).
pub const LOCKDOWN_WRAPPER: &str = "/usr/libexec/sandkasten/sandkasten-lockdown";
/// The C libraries every sandkasten binary links (the probe, the wrapper,
/// the servers: the reference units' `ExecPaths=` list the same), Debian's
/// paths on x86-64.
pub const BINARY_LIBRARIES: [&str; 4] = [
    "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
    "/usr/lib/x86_64-linux-gnu/libc.so.6",
    "/usr/lib/x86_64-linux-gnu/libm.so.6",
    "/usr/lib/x86_64-linux-gnu/libgcc_s.so.1",
];
/// The content the servers serve (fs.write-content's target).
pub const CONTENT_DIR: &str = "/usr/share/sandkasten/www";
/// The guest directory the probe passes' output files live in.
pub const OUTPUT_DIR: &str = "/run/sandkasten-matrix";

/// Where the payload disk is mounted in the guest.
pub const PAYLOAD: &str = "/payload";
/// The job the host writes for the guest side ([`crate::GuestJob`]).
pub const JOB: &str = "/payload/job.json";

/// The payload's layout, relative to its root (the directory the host
/// stages, [`PAYLOAD`] in the guest).
pub mod layout {
    /// The script the harness runner starts ([`crate::job::RUN_SCRIPT`]).
    pub const RUN: &str = "run";
    /// The job ([`super::JOB`]).
    pub const JOB: &str = "job.json";
    /// Copied onto `/` before systemd starts: units, the user's files.
    pub const OVERLAY: &str = "overlay";
    /// Where units go in the overlay.
    pub const UNITS: &str = "overlay/etc/systemd/system";
    /// The Debian packages the guest installs with dpkg at boot.
    pub const PACKAGES: &str = "packages";
}
