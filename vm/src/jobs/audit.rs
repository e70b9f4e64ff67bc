//! `sandkasten-vm audit` (a unit of one's own) and `sandkasten-vm lab`
//! (the lab steps, measured the same way).

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{
    ablation_maps, all_attempts, build, check_or_write, committed_enforcement, references_in, run_plan,
    stage, write_json, RunOptions,
};
use crate::audit::{self, AuditReport, Audited};
use crate::guest::print_progress;
use crate::host_mode::{self, Needs, Session};
use crate::lab::{self, LabReport};
use crate::payload::{self, Install};
use crate::{image, Release};

/// A unit of the user's and what it needs in the guest (`audit`, `harden`).
#[derive(Debug, Clone, Default)]
pub struct YourUnit {
    /// The service file.
    pub service: PathBuf,
    /// Its socket file, when not found beside it through `Requires=`.
    pub socket: Option<PathBuf>,
    /// `--binary SRC[:DEST]`.
    pub binaries: Vec<String>,
    /// `--files DIR[:DEST]`.
    pub files: Vec<String>,
    /// sysusers.d files for the users the unit names.
    pub sysusers: Vec<PathBuf>,
}

/// A unit read for one release, and what to install beside it.
pub(super) struct Loaded {
    pub audited: Audited,
    pub installs: Vec<Install>,
    /// The unit files a package ships, read out of the image: they live
    /// here while the job runs.
    _extracted: Option<tempfile::TempDir>,
}

/// Where a package's unit files are, in the order systemd prefers them.
const UNIT_DIRS: [&str; 3] = ["/etc/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"];

impl YourUnit {
    /// Whether the service is a unit a Debian package ships: a bare name
    /// (`nginx.service`) that is no file here.
    pub(super) fn packaged(&self) -> bool {
        self.service.components().count() == 1 && !self.service.exists()
    }

    /// The unit from its file, and the user's program and files.
    pub(super) fn load(&self) -> anyhow::Result<(Audited, Vec<Install>)> {
        let loaded = self.with_installs(audit::load(&self.service, self.socket.as_deref())?, None)?;
        Ok((loaded.audited, loaded.installs))
    }

    /// The unit as the job runs it on `release`: the file given, or the
    /// one the packages (`--package`) install in that release's image.
    pub(super) fn load_for(&self, opts: &RunOptions, release: Release) -> anyhow::Result<Loaded> {
        if !self.packaged() {
            return self.with_installs(audit::load(&self.service, self.socket.as_deref())?, None);
        }
        let name = self.service.display().to_string();
        anyhow::ensure!(
            !opts.packages.is_empty(),
            "{name}: no such file here; for a unit a Debian package ships, name the package \
             (--package NAME) and it is read from the guest's image"
        );
        let cache = opts.cache_dir.clone().unwrap_or_else(crate::default_cache_dir);
        let recipe = image::Recipe::with_packages(release, &opts.packages)?;
        let image = image::Image::ensure(&recipe, &cache, &mut print_progress)?;
        let dir = tempfile::tempdir()?;
        let service = extract_unit(&image, &name, dir.path())?.with_context(|| {
            format!(
                "{name} is in none of {} in the {release:?} image with {}",
                UNIT_DIRS.join(", "),
                opts.packages.join(" ")
            )
        })?;
        let mut socket = None;
        if let Some(given) = &self.socket {
            let socket_name = given.display().to_string();
            socket = Some(match given.exists() {
                true => given.clone(),
                false => {
                    extract_unit(&image, &socket_name, dir.path())?
                        .with_context(|| format!("{socket_name}: no such file here nor in the image"))?;
                    dir.path().join(&socket_name)
                }
            });
        } else {
            // The socket the service Requires=, which audit::load looks for beside it.
            for socket in required_sockets(&std::fs::read_to_string(dir.path().join(&name))?) {
                extract_unit(&image, &socket, dir.path())?;
            }
        }
        eprintln!("sandkasten-vm: {name} as Debian {release:?} ships it: {service}, read from the image");
        let audited = audit::load(&dir.path().join(&name), socket.as_deref())?;
        self.with_installs(audited, Some(dir))
    }

    /// Refuses what only a guest can do (`--binary`, `--files`,
    /// `--sysusers`, `--package`): on the host the program is installed.
    pub(super) fn refuse_guest_only(&self, opts: &RunOptions) -> anyhow::Result<()> {
        let given = [
            ("--binary", !self.binaries.is_empty()),
            ("--files", !self.files.is_empty()),
            ("--sysusers", !self.sysusers.is_empty()),
            ("--package", !opts.packages.is_empty()),
        ];
        if let Some((flag, _)) = given.iter().find(|(_, set)| *set) {
            anyhow::bail!(
                "{flag} installs into the guest; with --host the program, its files and its users must \
                 be installed on this machine already"
            );
        }
        Ok(())
    }

    /// The unit as this host runs it: a file given (installed as a runtime
    /// unit for the session when no unit of its name is installed), or an
    /// installed unit named alone, read with its drop-ins as systemd merges
    /// them (`systemctl cat`). `audited.files` is what is still to install:
    /// nothing.
    pub(super) fn load_on_host(&self, session: &Session) -> anyhow::Result<Loaded> {
        if self.packaged() {
            let name = self.service.display().to_string();
            let dir = tempfile::tempdir()?;
            let service = installed_unit(&name, dir.path())?;
            let socket = match &self.socket {
                Some(given) if given.exists() => Some(given.clone()),
                Some(given) => Some(installed_unit(&given.display().to_string(), dir.path())?),
                None => {
                    for socket in required_sockets(&std::fs::read_to_string(&service)?) {
                        installed_unit(&socket, dir.path())?;
                    }
                    None
                }
            };
            eprintln!("sandkasten-vm: {name} as this host runs it (systemctl cat {name})");
            let mut audited = audit::load(&service, socket.as_deref())?;
            audited.files.clear();
            return Ok(Loaded { audited, installs: Vec::new(), _extracted: Some(dir) });
        }
        let mut audited = audit::load(&self.service, self.socket.as_deref())?;
        for file in std::mem::take(&mut audited.files) {
            let name = file.file_name().and_then(|n| n.to_str()).context("a unit file has a name")?;
            let here = std::fs::canonicalize(&file)?;
            if host_mode::loaded_from(name).is_some_and(|from| Path::new(&from) == here) {
                continue;
            }
            session.install_file(&file).map_err(anyhow::Error::msg)?;
            eprintln!("sandkasten-vm: installed {} as a runtime unit for this run", file.display());
        }
        session.daemon_reload().map_err(anyhow::Error::msg)?;
        Ok(Loaded { audited, installs: Vec::new(), _extracted: None })
    }

    fn with_installs(
        &self,
        audited: Audited,
        extracted: Option<tempfile::TempDir>,
    ) -> anyhow::Result<Loaded> {
        let mut installs = resolve_binaries(&audited, &self.binaries)?;
        installs.extend(resolve_files(&self.files)?);
        Ok(Loaded { audited, installs, _extracted: extracted })
    }
}

/// Copies unit `name` out of `image` into `dir`: where it was found.
fn extract_unit(image: &image::Image, name: &str, dir: &Path) -> anyhow::Result<Option<String>> {
    for unit_dir in UNIT_DIRS {
        let path = format!("{unit_dir}/{name}");
        if let Some(text) = image.read_file(&path)? {
            std::fs::write(dir.join(name), text)?;
            return Ok(Some(path));
        }
    }
    Ok(None)
}

/// The sockets a unit's text `Requires=`: read beside it by
/// [`audit::load`].
fn required_sockets(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("Requires="))
        .flat_map(str::split_whitespace)
        .filter(|u| u.ends_with(".socket"))
        .map(str::to_owned)
        .collect()
}

/// An installed unit `name` with its drop-ins, as `systemctl cat` prints
/// it (one text systemd would read the same way), written to `dir`.
fn installed_unit(name: &str, dir: &Path) -> anyhow::Result<PathBuf> {
    let out = std::process::Command::new("systemctl")
        .args(["cat", "--no-pager", name])
        .output()
        .context("cannot run systemctl cat")?;
    anyhow::ensure!(
        out.status.success(),
        "{name}: no such file here, and no unit of that name is installed on this host ({})",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let path = dir.join(name);
    std::fs::write(&path, &out.stdout)?;
    Ok(path)
}

/// What `audit` runs, and with what of the user's.
#[derive(Debug, Clone, Default)]
pub struct AuditRequest {
    /// The unit and what it needs.
    pub unit: YourUnit,
    /// Where to write the reports as JSON.
    pub json: Option<PathBuf>,
    /// `--check COMMAND`: run by bash against the real program in the unit
    /// as written (`$PORT`, `$ADDR`: its socket's), before the probe.
    pub check: Option<String>,
    /// On this machine, not in a guest (`--host`).
    pub host: bool,
    /// The reference units and their ablation maps [default: the
    /// workspace's units/].
    pub units: Option<PathBuf>,
}

/// `sandkasten-vm audit`: true when nothing escaped and the audit is
/// complete on every release.
pub fn audit(opts: &RunOptions, request: &AuditRequest) -> anyhow::Result<bool> {
    let reports = match request.host {
        true => audit_here(opts, request)?,
        false => audit_in_guests(opts, request)?,
    };
    for report in &reports {
        println!("{}", report.text());
    }
    if let Some(path) = &request.json {
        write_json(path, &reports)?;
    }
    let escaped: usize = reports.iter().map(|r| r.escaped().len()).sum();
    let complete = reports.iter().all(|r| r.failures.is_empty());
    if reports.iter().flat_map(|r| &r.checks).any(|c| !c.ok) {
        eprintln!("sandkasten-vm: audit: THE PROGRAM DOES NOT SERVE in its sandbox (--check failed); fix the unit first");
    }
    if escaped > 0 {
        eprintln!(
            "sandkasten-vm: audit: {escaped} escape(s); each names what closes it in the reference units"
        );
    }
    Ok(escaped == 0 && complete)
}

/// `audit --host`: the unit audited on this machine.
fn audit_here(opts: &RunOptions, request: &AuditRequest) -> anyhow::Result<Vec<AuditReport>> {
    request.unit.refuse_guest_only(opts)?;
    let session = Session::begin("audit", &[Needs::Probe]).map_err(anyhow::Error::msg)?;
    let loaded = request.unit.load_on_host(&session)?;
    let units_dir = request.units.clone().unwrap_or_else(|| payload::workspace_root().join("units"));
    audits_on_host(&session, &[loaded.audited], &units_dir, request.check.as_deref())
}

/// `audit`: the unit audited in a guest of each release.
fn audit_in_guests(opts: &RunOptions, request: &AuditRequest) -> anyhow::Result<Vec<AuditReport>> {
    // A unit a package ships may differ between releases: read and staged
    // on each. A file is the same on all: staged once for all of them.
    let groups: Vec<Vec<Release>> = match request.unit.packaged() {
        true => opts.releases.iter().map(|&r| vec![r]).collect(),
        false => vec![opts.releases.clone()],
    };
    let mut reports = Vec::new();
    for releases in groups {
        let Some(&first) = releases.first() else { continue };
        let loaded = request.unit.load_for(opts, first)?;
        let these = RunOptions { releases, ..opts.clone() };
        let unit = [loaded.audited];
        reports.extend(run_audits(
            &these,
            &unit,
            &loaded.installs,
            &request.unit.sysusers,
            request.check.as_deref(),
        )?);
    }
    Ok(reports)
}

/// `sandkasten-vm lab`: every lab step audited on each release; writes
/// `units/lab/measured/RELEASE.json` and the README's table, or (`check`)
/// compares the measurement with them.
pub fn lab(opts: &RunOptions, check: bool) -> anyhow::Result<bool> {
    let dir = payload::workspace_root().join("units/lab");
    let steps: Vec<Audited> =
        lab::STEPS.iter().map(|step| audit::load(&dir.join(step), None)).collect::<Result<_, _>>()?;
    let sysusers = vec![dir.join(lab::SYSUSERS)];
    let reports = run_audits(opts, &steps, &[], &sysusers, None)?;
    let mut ok = true;
    for release in &opts.releases {
        let of_release: Vec<&AuditReport> =
            reports.iter().filter(|r| r.guest.release == release.to_string()).collect();
        let measured = LabReport::from_audits(&of_release);
        print!("{}", measured.text());
        let path = lab::measured_path(&dir, *release);
        ok &= check_or_write(&path, &measured, check, "a lab measurement", LabReport::differences)?;
        ok &= measured.failures.is_empty();
    }
    if !check {
        redraw_lab()?;
    }
    Ok(ok)
}

/// `sandkasten-vm lab --redraw`: the README's table from the committed
/// measurement, no guest.
pub fn redraw_lab() -> anyhow::Result<bool> {
    let dir = payload::workspace_root().join("units/lab");
    lab::write_readme_table(&dir)?;
    eprintln!("sandkasten-vm: wrote the table in {}", dir.join("README.md").display());
    crate::harden::write_examples(&dir)?;
    eprintln!("sandkasten-vm: wrote the harden examples in the lab guides");
    Ok(true)
}

/// Boots each release once with `units` installed (and the user's files)
/// and audits each unit there.
pub(super) fn run_audits(
    opts: &RunOptions,
    units: &[Audited],
    installs: &[Install],
    sysusers: &[PathBuf],
    check: Option<&str>,
) -> anyhow::Result<Vec<AuditReport>> {
    let started = std::time::Instant::now();
    let (guest_sysusers, installs) = guest_installs(units, installs, sysusers)?;
    let mut staged = audit::stage(units, &all_attempts(), &guest_sysusers);
    if let Some(command) = check {
        staged.plan.program_checks = units.iter().map(|unit| audit::program_check(unit, command)).collect();
    }
    let dir = stage(&build()?, &staged)?;
    payload::stage_installs(dir.path(), &installs)?;
    let units_dir = payload::workspace_root().join("units");
    let maps = ablation_maps(&units_dir).unwrap_or_default();
    let references = references_in(&units_dir).unwrap_or_default();
    let mut reports = Vec::new();
    for &release in &opts.releases {
        let enforcement: Vec<_> = committed_enforcement(&units_dir, release)?.into_iter().collect();
        let run = run_plan(opts, release, dir.path(), "audit")?;
        let output = String::from_utf8_lossy(run.result());
        let committed = audit::Committed { maps: &maps, enforcement: &enforcement, references: &references };
        let mut of_release = audit::evaluate(
            &staged,
            units,
            &output,
            (&release.to_string(), &run.accel.to_string()),
            committed,
        );
        if run.status != 0 {
            for report in &mut of_release {
                report.failures.push(format!("the guest side exited with status {}", run.status));
            }
        }
        for report in &mut of_release {
            report.guest.image = Some(run.image.clone());
        }
        reports.extend(of_release);
    }
    eprintln!(
        "sandkasten-vm: audit of {} unit(s) on {} release(s) took {:.0} s (build, boot and {} attempts in each unit)",
        units.len(),
        opts.releases.len(),
        started.elapsed().as_secs_f64(),
        all_attempts().len()
    );
    Ok(reports)
}

/// [`run_audits`] on this machine: `units` (their files installed as
/// runtime units first), each audited here. The services the audit starts
/// copies of, on the same ports, are stopped meanwhile and started again.
pub(super) fn audits_on_host(
    session: &Session,
    units: &[Audited],
    units_dir: &Path,
    check: Option<&str>,
) -> anyhow::Result<Vec<AuditReport>> {
    let started = std::time::Instant::now();
    let mut running = Vec::new();
    for unit in units {
        for file in &unit.files {
            session.install_file(file).map_err(anyhow::Error::msg)?;
        }
        running.extend(unit.reference.unit_names());
    }
    session.stop_for_now(&running).map_err(anyhow::Error::msg)?;
    let mut staged = audit::stage(units, &all_attempts(), &[]);
    if let Some(command) = check {
        staged.plan.program_checks = units.iter().map(|unit| audit::program_check(unit, command)).collect();
    }
    let output = session.carry_out(&staged).map_err(anyhow::Error::msg)?;
    let maps = ablation_maps(units_dir).unwrap_or_default();
    // The maps of this host's Debian release, if it is one, say what closes an escape.
    let release = output
        .lines()
        .find_map(|line| match serde_json::from_str(line) {
            Ok(crate::contract::GuestEvent::Guest(info)) => Some(info.release),
            _ => None,
        })
        .unwrap_or_else(|| "host".to_owned());
    let references = references_in(units_dir).unwrap_or_default();
    let committed = audit::Committed { maps: &maps, enforcement: &[], references: &references };
    let reports = audit::evaluate(&staged, units, &output, (&release, "host"), committed);
    eprintln!(
        "sandkasten-vm: audit of {} unit(s) on this host took {:.0} s ({} attempts in each unit)",
        units.len(),
        started.elapsed().as_secs_f64(),
        all_attempts().len()
    );
    Ok(reports)
}

/// What goes into the guest for `units`: `installs`, the sysusers files
/// (and their guest paths, returned first) and the unit files as written,
/// where an admin puts them.
pub(super) fn guest_installs(
    units: &[Audited],
    installs: &[Install],
    sysusers: &[PathBuf],
) -> anyhow::Result<(Vec<String>, Vec<Install>)> {
    let mut installs = installs.to_vec();
    let (guest_sysusers, sysusers_installs) = resolve_sysusers(sysusers)?;
    installs.extend(sysusers_installs);
    for file in units.iter().flat_map(|u| &u.files) {
        let name = file.file_name().context("a unit file has a name")?;
        installs.push(Install { from: file.clone(), to: Path::new("/etc/systemd/system").join(name) });
    }
    Ok((guest_sysusers, installs))
}

/// `--binary SRC[:DEST]`: DEST defaults to the program of the unit with
/// SRC's file name.
fn resolve_binaries(audited: &Audited, binaries: &[String]) -> anyhow::Result<Vec<Install>> {
    let programs = audit::programs(&audited.reference.service);
    binaries
        .iter()
        .map(|arg| {
            let (from, to) = split_destination(arg);
            let meta = std::fs::metadata(&from).with_context(|| format!("--binary {arg}: cannot read {}", from.display()))?;
            anyhow::ensure!(meta.is_file(), "--binary {arg}: {} is not a file", from.display());
            let to = match to {
                Some(to) => to,
                None => {
                    let name = from.file_name().unwrap_or_default().to_string_lossy().into_owned();
                    let found = programs.iter().find(|p| Path::new(p).file_name().is_some_and(|n| *n == *name));
                    PathBuf::from(found.with_context(|| {
                        format!(
                            "--binary {arg}: the unit runs no program named {name} ({}); say where it goes: --binary {}:/path/in/guest",
                            if programs.is_empty() { "it names none".to_owned() } else { programs.join(", ") },
                            from.display()
                        )
                    })?)
                }
            };
            Ok(Install { from, to })
        })
        .collect()
}

/// `--files DIR[:DEST]`: DEST defaults to `/` (DIR is a root overlay).
fn resolve_files(files: &[String]) -> anyhow::Result<Vec<Install>> {
    files
        .iter()
        .map(|arg| {
            let (from, to) = split_destination(arg);
            anyhow::ensure!(from.exists(), "--files {arg}: {} does not exist", from.display());
            let to = to.unwrap_or_else(|| PathBuf::from("/"));
            Ok(Install { from, to })
        })
        .collect()
}

/// `--sysusers FILE`: each file goes to `/usr/lib/sysusers.d/STEM.conf`;
/// those guest paths, and the installs.
pub(super) fn resolve_sysusers(files: &[PathBuf]) -> anyhow::Result<(Vec<String>, Vec<Install>)> {
    let mut paths = Vec::new();
    let mut installs = Vec::new();
    for file in files {
        anyhow::ensure!(file.is_file(), "--sysusers {}: no such file", file.display());
        let name = file.file_stem().and_then(|s| s.to_str()).context("a sysusers file needs a name")?;
        let to = PathBuf::from(format!("/usr/lib/sysusers.d/{name}.conf"));
        paths.push(to.display().to_string());
        installs.push(Install { from: file.clone(), to });
    }
    Ok((paths, installs))
}

/// `SRC:DEST` (DEST absolute) or `SRC`.
fn split_destination(arg: &str) -> (PathBuf, Option<PathBuf>) {
    match arg.rsplit_once(':') {
        Some((from, to)) if to.starts_with('/') && !from.is_empty() => (from.into(), Some(to.into())),
        _ => (arg.into(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_destination_is_split_off_only_when_absolute() {
        assert_eq!(split_destination("www:/srv/www"), ("www".into(), Some("/srv/www".into())));
        assert_eq!(split_destination("target/release/web"), ("target/release/web".into(), None));
        assert_eq!(split_destination("a:b"), ("a:b".into(), None));
    }

    #[test]
    fn a_unit_named_without_a_path_comes_from_a_package_named_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("web.service");
        std::fs::write(&file, "[Service]\nExecStart=/usr/bin/web\n").unwrap();
        let unit = |service: PathBuf| YourUnit { service, ..YourUnit::default() };
        assert!(!unit(file.clone()).packaged(), "a file is read as it is");
        assert!(!unit(PathBuf::from("units/none.service")).packaged(), "a path that is missing is an error");
        assert!(unit(PathBuf::from("nginx.service")).packaged());
        let opts = RunOptions {
            releases: vec![Release::Bookworm],
            cache_dir: None,
            accel: crate::AccelRequest::Auto,
            timeout: None,
            boot_deadline: None,
            packages: Vec::new(),
            systemd: None,
        };
        let err = unit(PathBuf::from("nginx.service")).load_for(&opts, Release::Bookworm).err().unwrap();
        assert!(err.to_string().contains("--package"), "{err}");
    }

    #[test]
    fn a_binary_goes_where_the_unit_runs_it_or_the_error_says_where_to_put_it() {
        let dir = tempfile::tempdir().unwrap();
        let service = dir.path().join("web.service");
        std::fs::write(&service, "[Service]\nExecStart=/usr/local/bin/web --port 80\n").unwrap();
        let binary = dir.path().join("web");
        std::fs::write(&binary, "#!/bin/sh\n").unwrap();
        let audited = audit::load(&service, None).unwrap();
        let installs = resolve_binaries(&audited, &[binary.display().to_string()]).unwrap();
        assert_eq!(installs[0].to, PathBuf::from("/usr/local/bin/web"));
        let other = dir.path().join("other");
        std::fs::write(&other, "").unwrap();
        let err = resolve_binaries(&audited, &[other.display().to_string()]).unwrap_err().to_string();
        assert!(err.contains("runs no program named other (/usr/local/bin/web)"), "{err}");
        let err = resolve_binaries(&audited, &["/nonexistent/x".into()]).unwrap_err().to_string();
        assert!(err.contains("cannot read /nonexistent/x"), "{err}");
        assert!(resolve_files(&["/nonexistent:/srv".into()])
            .unwrap_err()
            .to_string()
            .contains("does not exist"));
    }
}
