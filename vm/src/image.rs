//! The guest image: recipe, hash, cached build.
//!
//! The recipe is the text under `vm/guest/` (package list, customize script,
//! units, runner, tiny initrd init, kernel arguments), embedded at compile
//! time, and the build's parameters ([`Recipe::build`]: mmdebstrap's
//! arguments, the initrd's modules, mkfs's arguments). Its hash names the
//! cache directory `<cache>/images/<release>-<hash>/`, so an image is rebuilt
//! exactly when the recipe changes, and a binary moved elsewhere still knows
//! its recipe. The Rust source is not hashed (a changed message costs no
//! rebuild); a build step that changes in a way the parameters do not show
//! bumps `CACHE_FORMAT` by hand.
//!
//! A build runs `mmdebstrap` into a temporary directory next to the final one,
//! extracts the kernel and the stock initrd, writes the tiny initrd, packs the
//! root file system into `rootfs.img` with `mkfs.ext4 -d` (no mount needed),
//! and renames the directory into place: a half-built image is never seen.
//! Runs boot `rootfs.img` with `snapshot=on`, so it is never written to.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::contract::ImageInfo;
use crate::error::{Error, IoContext};
use crate::process::{require_tool, run_captured, run_streaming};
use crate::progress::Event;
pub use crate::release::Release;

/// One file of the guest recipe, embedded from `vm/guest/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestFile {
    /// The path below `vm/guest/`.
    pub path: &'static str,
    /// The file's text.
    pub contents: &'static str,
    /// Its permission bits in the guest (overlay files) or when run (scripts).
    pub mode: u32,
}

macro_rules! guest_file {
    ($path:literal, $mode:literal) => {
        GuestFile { path: $path, contents: include_str!(concat!("../guest/", $path)), mode: $mode }
    };
}

/// Every file of `vm/guest/`. Files under `overlay/` are copied onto the
/// guest's root before `customize.sh` runs.
pub const GUEST_FILES: &[GuestFile] = &[
    guest_file!("packages.txt", 0o644),
    guest_file!("customize.sh", 0o755),
    guest_file!("cmdline.txt", 0o644),
    guest_file!("initrd/init", 0o755),
    guest_file!("overlay/etc/systemd/system/sandkasten-harness.target", 0o644),
    guest_file!("overlay/etc/systemd/system/sandkasten-harness.service", 0o644),
    guest_file!("overlay/etc/systemd/system/sandkasten-shell.target", 0o644),
    guest_file!("overlay/etc/systemd/system/sandkasten-shell.service", 0o644),
    guest_file!("overlay/usr/lib/sandkasten/harness-runner", 0o755),
];

/// Bumped by hand when a build step changes in a way [`Recipe::build`]
/// does not show (how the kernel is extracted, how the root is packed).
/// The Rust source is not hashed: editing a message must not cost a
/// rebuild.
const CACHE_FORMAT: &str = "sandkasten-vm image cache v2";

/// mmdebstrap's hooks for a merged /usr, where the host has them.
const MERGED_USR_HOOKS: &str = "/usr/share/mmdebstrap/hooks/merged-usr";

/// `mkfs.ext4`'s arguments before the source tree and the image path.
const MKFS_ARGS: [&str; 5] = ["-q", "-F", "-L", "sandkasten-root", "-d"];
/// The root file system's size.
const ROOTFS_SIZE: &str = "2G";

/// The guest recipe for one release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipe {
    /// The Debian release.
    pub release: Release,
    /// Packages beyond `packages.txt` (`--package`: the interpreter or
    /// server a user's unit runs), sorted, each once. They are part of the
    /// recipe, so each set has an image of its own in the cache.
    pub extra: Vec<String>,
}

impl Recipe {
    /// The recipe for `release`.
    pub fn new(release: Release) -> Recipe {
        Recipe { release, extra: Vec::new() }
    }

    /// The recipe for `release` with `extra` packages installed too; an
    /// error names a word that cannot be a Debian package name.
    pub fn with_packages(release: Release, extra: &[String]) -> Result<Recipe, Error> {
        let mut extra: Vec<String> = extra.to_vec();
        for name in &extra {
            let valid = name.len() >= 2
                && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c));
            if !valid {
                return Err(Error::Config(format!(
                    "--package {name:?} is not a Debian package name (lower-case letters, digits, + - .)"
                )));
            }
        }
        extra.sort();
        extra.dedup();
        Ok(Recipe { release, extra })
    }

    /// The packages to install on top of minbase: `packages.txt`, then the
    /// extra ones.
    pub fn packages(&self) -> Vec<String> {
        let mut packages: Vec<String> =
            parse_packages(guest_file("packages.txt")).into_iter().map(str::to_owned).collect();
        packages.extend(self.extra.iter().cloned());
        packages
    }

    /// mmdebstrap's arguments before the suite, the target and the mirror:
    /// the variant, the packages, the hooks and the dpkg and apt options.
    pub fn bootstrap_args(&self) -> Vec<String> {
        let mut args: Vec<String> =
            ["--variant=minbase", "--mode=root", "--format=directory"].map(String::from).into();
        args.push(format!("--include={}", self.packages().join(",")));
        if Path::new(MERGED_USR_HOOKS).is_dir() {
            args.push(format!("--hook-dir={MERGED_USR_HOOKS}"));
        }
        // No fsync per unpacked file: the tree is packed into an image anyway.
        args.push("--dpkgopt=force-unsafe-io".into());
        // Documentation nobody reads in the guest; smaller image, faster mkfs.
        for excluded in ["/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*"] {
            args.push(format!("--dpkgopt=path-exclude={excluded}"));
        }
        // sid's Release file is valid for days only, and a mirror that serves a
        // snapshot (this workplace's does) outlives it: apt then refuses it as
        // expired. The signature is still checked; only its age is not.
        if self.release.moves() {
            args.push("--aptopt=Acquire::Check-Valid-Until \"false\"".into());
        }
        args
    }

    /// Everything the build does with the guest files, as text: mmdebstrap's
    /// arguments, the tiny initrd's modules, mkfs's arguments.
    pub fn build(&self) -> Vec<String> {
        let mut build = self.bootstrap_args();
        build.push(format!("initrd modules: {}", crate::initrd::MODULES.join(" ")));
        build.push(format!("mkfs.ext4 {} {ROOTFS_SIZE}", MKFS_ARGS.join(" ")));
        build
    }

    /// The recipe hash (16 hex digits) that names the cache directory.
    pub fn hash(&self) -> String {
        recipe_hash(self.release, GUEST_FILES, &self.build())
    }

    /// The cache directory's name: `<release>-<hash>`, or with extra
    /// packages `<release>+<package>...-<hash>` (so that a listing of the
    /// cache says what each image holds).
    pub fn key(&self) -> String {
        let extra: String = self.extra.iter().map(|p| format!("+{p}")).collect();
        format!("{}{extra}-{}", self.release, self.hash())
    }
}

/// Hashes everything that determines an image: the release, every guest file
/// (path, mode and text) and the build's parameters. Names and lengths are
/// hashed too, so moving text from one file to another changes the hash.
pub fn recipe_hash(release: Release, files: &[GuestFile], build: &[String]) -> String {
    let mut h = Sha256::new();
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    field(CACHE_FORMAT.as_bytes());
    field(release.codename().as_bytes());
    let mut files: Vec<&GuestFile> = files.iter().collect();
    files.sort_by_key(|f| f.path);
    for f in files {
        field(f.path.as_bytes());
        field(&f.mode.to_le_bytes());
        field(f.contents.as_bytes());
    }
    for parameter in build {
        field(parameter.as_bytes());
    }
    let digest = h.finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Package names from `packages.txt` text: one a line, `#` comments.
pub fn parse_packages(text: &str) -> Vec<&str> {
    text.lines().map(|l| l.split('#').next().unwrap_or("").trim()).filter(|l| !l.is_empty()).collect()
}

/// The kernel command line from `cmdline.txt` text: words joined by spaces.
pub(crate) fn kernel_cmdline() -> String {
    guest_file("cmdline.txt")
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .flat_map(str::split_whitespace)
        .collect::<Vec<_>>()
        .join(" ")
}

fn guest_file(path: &str) -> &'static str {
    GUEST_FILES
        .iter()
        .find(|f| f.path == path)
        .map(|f| f.contents)
        // The table above is a compile-time constant that lists this path.
        .expect("guest file is embedded")
}

/// The Debian mirror for mmdebstrap: `$SANDKASTEN_VM_MIRROR`, else the first
/// non-security archive in the host's apt sources (this machine reaches that
/// mirror only), else Debian's redirector.
pub fn host_mirror() -> String {
    if let Some(m) = std::env::var("SANDKASTEN_VM_MIRROR").ok().filter(|m| !m.is_empty()) {
        return m;
    }
    let mut texts = Vec::new();
    if let Ok(t) = std::fs::read_to_string("/etc/apt/sources.list") {
        texts.push(t);
    }
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut paths: Vec<PathBuf> = dir.flatten().map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            let ext = p.extension().and_then(|e| e.to_str());
            if matches!(ext, Some("list" | "sources")) {
                if let Ok(t) = std::fs::read_to_string(&p) {
                    texts.push(t);
                }
            }
        }
    }
    texts.iter().find_map(|t| parse_mirror(t)).unwrap_or_else(|| "http://deb.debian.org/debian".to_string())
}

/// The first Debian archive URI in apt sources text (one-line `deb URI SUITE`
/// or deb822 `URIs:`/`Suites:` stanzas), skipping security archives and
/// anything whose suites are not Debian code names.
pub fn parse_mirror(text: &str) -> Option<String> {
    let is_debian_suite = |s: &str| {
        let base = s.split('-').next().unwrap_or(s);
        !s.contains("security")
            && matches!(base, "bookworm" | "trixie" | "sid" | "unstable" | "testing" | "stable" | "forky")
    };
    // deb822 stanzas are separated by blank lines.
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim().eq_ignore_ascii_case(name)).then(|| v.trim().to_string())
            })
        };
        if let (Some(uris), Some(suites)) = (field("URIs"), field("Suites")) {
            let types = field("Types").unwrap_or_else(|| "deb".into());
            let enabled = field("Enabled").map_or(true, |e| e != "no");
            if enabled
                && types.split_whitespace().any(|t| t == "deb")
                && suites.split_whitespace().any(is_debian_suite)
            {
                if let Some(uri) = uris.split_whitespace().next() {
                    return Some(uri.trim_end_matches('/').to_string());
                }
            }
        }
    }
    text.lines().find_map(|line| {
        let line = line.split('#').next()?.trim();
        let mut words = line.split_whitespace().filter(|w| !w.starts_with('['));
        if words.next()? != "deb" {
            return None;
        }
        let uri = words.next()?;
        let suite = words.next()?;
        is_debian_suite(suite).then(|| uri.trim_end_matches('/').to_string())
    })
}

/// What a build wrote about the image, kept as `manifest.json` beside it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// The Debian release.
    pub release: Release,
    /// The recipe hash.
    pub recipe_hash: String,
    /// The kernel's release string (`uname -r` in the guest).
    pub kernel: String,
    /// The version of the systemd package.
    pub systemd: String,
    /// The mirror the packages came from.
    pub mirror: String,
    /// Seconds the build took.
    pub build_seconds: f64,
    /// Every installed package as `name=version`.
    pub packages: Vec<String>,
    /// When the build ended, UTC, RFC 3339 (absent in images built before
    /// it was recorded: their manifest's modification time says it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub built: Option<String>,
}

/// The packages a sandbox goes through, by name prefix: the kernel, systemd
/// (and its libraries), and what it sandboxes with (seccomp, capabilities,
/// the C library). A report names their versions ([`ImageInfo`]).
const SANDBOX_PACKAGES: [&str; 6] =
    ["linux-image-", "systemd", "libsystemd", "libseccomp", "libcap2", "libc6"];

/// A built image in the cache.
#[derive(Debug, Clone)]
pub struct Image {
    /// The directory `<cache>/images/<release>-<hash>/`.
    pub dir: PathBuf,
    /// What the build recorded.
    pub manifest: Manifest,
}

impl Image {
    /// The ext4 root file system (booted with `snapshot=on`, never written).
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs.img")
    }
    /// The kernel (bzImage).
    pub fn kernel(&self) -> PathBuf {
        self.dir.join("vmlinuz")
    }
    /// Debian's own initrd (initramfs-tools).
    pub fn stock_initrd(&self) -> PathBuf {
        self.dir.join("initrd.stock")
    }
    /// The tiny initrd: busybox, the virtio modules, `vm/guest/initrd/init`.
    pub fn tiny_initrd(&self) -> PathBuf {
        self.dir.join("initrd.tiny")
    }

    /// A file of the image's root file system, read without mounting it
    /// (`debugfs`, which follows symbolic links such as `/lib` -> `usr/lib`);
    /// `None` when there is no such file.
    pub fn read_file(&self, path: &str) -> Result<Option<String>, Error> {
        require_tool("debugfs", "e2fsprogs")?;
        let mut cmd = Command::new("debugfs");
        cmd.arg("-R").arg(format!("cat \"{path}\"")).arg(self.rootfs());
        let output =
            cmd.stdin(std::process::Stdio::null()).output().ctx(|| "failed to run debugfs".into())?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            return Err(Error::Command {
                command: format!("debugfs -R 'cat {path}' {}", self.rootfs().display()),
                status: output.status.to_string(),
                output: stderr.into_owned(),
            });
        }
        if stderr.contains("not found") || stderr.contains("No such file") {
            return Ok(None);
        }
        Ok(Some(String::from_utf8_lossy(&output.stdout).into_owned()))
    }

    /// Opens the cached image of `recipe`, if built.
    pub fn cached(recipe: &Recipe, cache_dir: &Path) -> Result<Option<Image>, Error> {
        let dir = images_dir(cache_dir).join(recipe.key());
        if !dir.is_dir() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(dir.join("manifest.json"))
            .ctx(|| format!("failed to read {}", dir.join("manifest.json").display()))?;
        let manifest = serde_json::from_str(&text)
            .map_err(|e| Error::Image { dir: dir.clone(), detail: format!("bad manifest.json: {e}") })?;
        Ok(Some(Image { dir, manifest }))
    }

    /// When the image was built: its manifest's record, else the
    /// manifest's modification time.
    pub fn built(&self) -> SystemTime {
        self.manifest
            .built
            .as_deref()
            .and_then(|t| humantime::parse_rfc3339(t).ok())
            .or_else(|| std::fs::metadata(self.dir.join("manifest.json")).and_then(|m| m.modified()).ok())
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }

    /// How long ago it was built.
    pub fn age(&self) -> Duration {
        SystemTime::now().duration_since(self.built()).unwrap_or_default()
    }

    /// Whether it was built more than `max` ago.
    pub fn is_older_than(&self, max: Duration) -> bool {
        self.age() > max
    }

    /// What a report says of the image: build time, recipe, and the
    /// versions of the packages a sandbox goes through.
    pub fn info(&self) -> ImageInfo {
        ImageInfo {
            built: humantime::format_rfc3339_seconds(self.built()).to_string(),
            recipe: self.manifest.recipe_hash.clone(),
            packages: self
                .manifest
                .packages
                .iter()
                .filter(|p| SANDBOX_PACKAGES.iter().any(|prefix| p.starts_with(prefix)))
                .cloned()
                .collect(),
            systemd_build: None,
        }
    }

    /// [`Image::ensure`], but an image built more than `max_age` ago is
    /// built again (sid moves daily: a report should measure today's).
    pub fn ensure_fresh(
        recipe: &Recipe,
        cache_dir: &Path,
        max_age: Option<Duration>,
        on_event: &mut dyn FnMut(&Event),
    ) -> Result<Image, Error> {
        match (Image::cached(recipe, cache_dir)?, max_age) {
            (Some(image), Some(max)) if image.is_older_than(max) => {
                on_event(&Event::Progress {
                    stage: "image".into(),
                    elapsed: Duration::ZERO,
                    detail: format!(
                        "{} was built {} ago, more than the {} allowed: building it again",
                        image.dir.display(),
                        days(image.age()),
                        days(max)
                    ),
                });
                Image::build(recipe, cache_dir, on_event)
            }
            _ => Image::ensure(recipe, cache_dir, on_event),
        }
    }

    /// The cached image of `recipe`, built first when there is none.
    /// Concurrent callers (parallel tests, two terminals) wait on a lock file
    /// instead of building the same image twice.
    pub fn ensure(
        recipe: &Recipe,
        cache_dir: &Path,
        on_event: &mut dyn FnMut(&Event),
    ) -> Result<Image, Error> {
        if let Some(image) = Image::cached(recipe, cache_dir)? {
            return Ok(image);
        }
        let _lock = lock(cache_dir, &recipe.key())?;
        if let Some(image) = Image::cached(recipe, cache_dir)? {
            return Ok(image);
        }
        build_locked(recipe, cache_dir, on_event)
    }

    /// Builds the image of `recipe` (replacing a cached one with the same
    /// recipe hash). Progress goes to `on_event` as [`Event::Progress`].
    pub fn build(
        recipe: &Recipe,
        cache_dir: &Path,
        on_event: &mut dyn FnMut(&Event),
    ) -> Result<Image, Error> {
        let _lock = lock(cache_dir, &recipe.key())?;
        build_locked(recipe, cache_dir, on_event)
    }
}

/// Builds the image; the caller holds the recipe's lock.
fn build_locked(recipe: &Recipe, cache_dir: &Path, on_event: &mut dyn FnMut(&Event)) -> Result<Image, Error> {
    require_tool("mmdebstrap", "mmdebstrap")?;
    require_tool("mkfs.ext4", "e2fsprogs")?;
    let release = recipe.release;
    let images = images_dir(cache_dir);
    std::fs::create_dir_all(&images).ctx(|| format!("failed to create {}", images.display()))?;
    let started = Instant::now();
    let mut progress = |stage: &str, detail: String| {
        on_event(&Event::Progress { stage: stage.to_string(), elapsed: started.elapsed(), detail })
    };
    let mirror = host_mirror();
    progress(
        "image",
        format!("building {} (recipe {}) from {mirror} into {}", release, recipe.hash(), images.display()),
    );

    // Leftovers of builds that were killed (the lock says none is running).
    let stale = format!(".build-{}-", recipe.key());
    for entry in std::fs::read_dir(&images).ctx(|| format!("failed to list {}", images.display()))?.flatten()
    {
        if entry.file_name().to_string_lossy().starts_with(&stale) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }

    // Built beside its final place so the rename is atomic; removed on error.
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".build-{}-", recipe.key()))
        .tempdir_in(&images)
        .ctx(|| format!("failed to create a build directory in {}", images.display()))?;
    let out = tmp.path();
    let staging = out.join("recipe");
    write_guest_files(&staging)?;
    let rootfs = out.join("rootfs");

    // 1. mmdebstrap: minbase plus packages.txt.
    let mut cmd = Command::new("mmdebstrap");
    cmd.args(recipe.bootstrap_args());
    cmd.arg(release.codename()).arg(&rootfs).arg(&mirror);
    run_streaming(&mut cmd, "mmdebstrap", &mut |line| {
        if let Some(info) = line.strip_prefix("I: ") {
            progress("bootstrap", info.to_string());
        }
    })?;
    progress("bootstrap", "done".into());

    // 2. The overlay and customize.sh, after mmdebstrap's own cleanup
    // (which would reset /etc/machine-id).
    for f in GUEST_FILES {
        if let Some(rel) = f.path.strip_prefix("overlay/") {
            write_file(&rootfs.join(rel), f)?;
        }
    }
    let mut customize = Command::new(staging.join("customize.sh"));
    customize.arg(&rootfs);
    run_captured(&mut customize, "customize.sh")?;
    progress("customize", "overlay copied, customize.sh done".into());

    // 3. The kernel and Debian's initrd, out of the guest's /boot.
    let boot = rootfs.join("boot");
    let vmlinuz = only_entry(&boot, "vmlinuz-")?;
    let kernel = vmlinuz
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("vmlinuz-"))
        .unwrap_or_default()
        .to_string();
    copy(&vmlinuz, &out.join("vmlinuz"))?;
    copy(&boot.join(format!("initrd.img-{kernel}")), &out.join("initrd.stock"))?;
    progress("kernel", format!("linux {kernel}"));

    // 4. The tiny initrd.
    let tiny = crate::initrd::build_tiny(&rootfs, &kernel, guest_file("initrd/init"))?;
    std::fs::write(out.join("initrd.tiny"), &tiny).ctx(|| "failed to write initrd.tiny".into())?;
    progress("tiny initrd", format!("{} KiB", tiny.len() / 1024));

    // 5. The manifest, from dpkg's status file.
    let status = std::fs::read_to_string(rootfs.join("var/lib/dpkg/status"))
        .ctx(|| "failed to read the guest's dpkg status".into())?;
    let packages = installed_packages(&status);
    let systemd = packages.iter().find_map(|p| p.strip_prefix("systemd=")).unwrap_or("unknown").to_string();

    // 6. The root file system as ext4, written without mounting anything.
    let mut mkfs = Command::new("mkfs.ext4");
    mkfs.args(MKFS_ARGS).arg(&rootfs).arg(out.join("rootfs.img")).arg(ROOTFS_SIZE);
    run_captured(&mut mkfs, "mkfs.ext4")?;
    progress("ext4", format!("rootfs.img ({ROOTFS_SIZE}, sparse)"));
    std::fs::remove_dir_all(&rootfs).ctx(|| format!("failed to remove {}", rootfs.display()))?;
    std::fs::remove_dir_all(&staging).ctx(|| format!("failed to remove {}", staging.display()))?;

    let manifest = Manifest {
        release,
        recipe_hash: recipe.hash(),
        kernel,
        systemd,
        mirror,
        build_seconds: started.elapsed().as_secs_f64(),
        packages,
        built: Some(humantime::format_rfc3339_seconds(SystemTime::now()).to_string()),
    };
    let json = serde_json::to_string_pretty(&manifest).expect("a manifest always serialises");
    std::fs::write(out.join("manifest.json"), json).ctx(|| "failed to write manifest.json".into())?;

    // 7. Into place, atomically.
    let dir = images.join(recipe.key());
    if dir.exists() {
        std::fs::remove_dir_all(&dir).ctx(|| format!("failed to remove the old {}", dir.display()))?;
    }
    let tmp_path = tmp.keep();
    std::fs::rename(&tmp_path, &dir).ctx(|| format!("failed to rename the build to {}", dir.display()))?;
    progress("image", format!("ready in {}", dir.display()));
    Ok(Image { dir, manifest })
}

/// `<cache>/images`.
fn images_dir(cache_dir: &Path) -> PathBuf {
    cache_dir.join("images")
}

/// Takes an exclusive lock on `<cache>/images/.<key>.lock` until dropped.
fn lock(cache_dir: &Path, key: &str) -> Result<std::fs::File, Error> {
    let images = images_dir(cache_dir);
    std::fs::create_dir_all(&images).ctx(|| format!("failed to create {}", images.display()))?;
    let path = images.join(format!(".{key}.lock"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .ctx(|| format!("failed to open {}", path.display()))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
        .map_err(std::io::Error::from)
        .ctx(|| format!("failed to lock {}", path.display()))?;
    Ok(file)
}

/// Writes the embedded guest files below `dir` with their modes.
fn write_guest_files(dir: &Path) -> Result<(), Error> {
    for f in GUEST_FILES {
        write_file(&dir.join(f.path), f)?;
    }
    Ok(())
}

/// Writes one guest file at `path` (parents created) with its mode.
fn write_file(path: &Path, f: &GuestFile) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).ctx(|| format!("failed to create {}", parent.display()))?;
    }
    std::fs::write(path, f.contents).ctx(|| format!("failed to write {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(f.mode))
        .ctx(|| format!("failed to chmod {}", path.display()))
}

/// The single entry of `dir` whose name starts with `prefix`.
fn only_entry(dir: &Path, prefix: &str) -> Result<PathBuf, Error> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ctx(|| format!("failed to list {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(prefix)))
        .collect();
    found.sort();
    match found.len() {
        1 => Ok(found.remove(0)),
        n => Err(Error::Image {
            dir: dir.to_path_buf(),
            detail: format!("expected one {prefix}* in the guest's /boot, found {n}"),
        }),
    }
}

fn copy(from: &Path, to: &Path) -> Result<(), Error> {
    std::fs::copy(from, to).ctx(|| format!("failed to copy {} to {}", from.display(), to.display()))?;
    Ok(())
}

/// `name=version` for every installed package in a dpkg status file.
fn installed_packages(status: &str) -> Vec<String> {
    let mut out = Vec::new();
    for stanza in status.split("\n\n") {
        let field = |name: &str| {
            stanza.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(':')).map(str::trim))
        };
        if let (Some(p), Some(v), Some(s)) = (field("Package"), field("Version"), field("Status")) {
            if s.ends_with(" installed") {
                out.push(format!("{p}={v}"));
            }
        }
    }
    out.sort();
    out
}

/// `9.2 days`, for a message about an image's age.
fn days(duration: Duration) -> String {
    format!("{:.1} days", duration.as_secs_f64() / 86_400.0)
}
