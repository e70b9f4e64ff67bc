//! `sandkasten-vm harden`: a unit of one's own, made as tight as its real
//! program allows, and proven: one boot finds the drop-in (the guest
//! side's harden), a second audits the unit as given beside each hardened
//! variant.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;

use super::audit::{audits_on_host, guest_installs, run_audits, YourUnit};
use super::{ablation_maps, build, finish, guest_report, run_plan, stage_job, write_json, RunOptions};
use crate::ablation::AblationMap;
use crate::audit::{self, Audited};
use crate::contract::harden::{
    render_drop_in, Candidate, DropInLine, HardenJob, HardenReport, Variant, DROP_IN,
};
use crate::contract::GuestJob;
use crate::harden::{self, HardenOutcome};
use crate::host_mode::{Needs, Session};
use crate::passes::{self, Reference};
use crate::payload;

/// What `harden` runs, and with what of the user's.
#[derive(Debug, Clone, Default)]
pub struct HardenRequest {
    /// The unit and what it needs.
    pub unit: YourUnit,
    /// `--check COMMAND` [default: an HTTP GET for a unit that looks like
    /// HTTP, else a TCP connect and a byte].
    pub check: Option<String>,
    /// Where `UNIT.service.d/` goes [default: beside the unit].
    pub out: Option<PathBuf>,
    /// Where to write the outcomes as JSON.
    pub json: Option<PathBuf>,
    /// Leave out the socket-activated variant.
    pub no_socket: bool,
    /// On this machine, not in a guest (`--host`).
    pub host: bool,
    /// The reference units and their ablation maps [default: the
    /// workspace's units/].
    pub units: Option<PathBuf>,
}

/// The default check: an HTTP GET of `/` answered 2xx or 3xx for a unit
/// whose command or socket looks like HTTP, else a TCP connect and a byte.
pub fn default_check(unit: &Audited) -> String {
    let text = std::iter::once(unit.reference.service.render())
        .chain(unit.reference.socket.as_ref().map(|(_, s)| s.render()))
        .collect::<String>()
        .to_lowercase();
    let http_port =
        [":80\n", "=80\n", "8000", "8080", "8008", "8443", ":443", "=443"].iter().any(|p| text.contains(p));
    if text.contains("http") || text.contains("nginx") || text.contains("apache") || http_port {
        "exec 3<>/dev/tcp/127.0.0.1/$PORT && printf 'GET / HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 \
         && head -n 1 <&3 | grep -E '^HTTP/1\\.[01] [23][0-9][0-9]'"
            .to_owned()
    } else {
        "exec 3<>/dev/tcp/127.0.0.1/$PORT && printf '\\n' >&3".to_owned()
    }
}

/// `sandkasten-vm harden`: true when on every release (or on this host) a
/// hardened variant serves the check and its audit is complete.
pub fn harden(opts: &RunOptions, request: &HardenRequest) -> anyhow::Result<bool> {
    let started = Instant::now();
    let units_dir = request.units.clone().unwrap_or_else(|| payload::workspace_root().join("units"));
    let reference = passes::load_reference(&units_dir, harden::REFERENCE)?;
    let maps = ablation_maps(&units_dir)?;
    let out = match &request.out {
        Some(out) => out.clone(),
        None if request.unit.packaged() => PathBuf::from("."),
        None => request.unit.service.parent().map_or_else(|| PathBuf::from("."), Path::to_owned),
    };
    let mut outcomes = Vec::new();
    if request.host {
        request.unit.refuse_guest_only(opts)?;
        let session = Session::begin("harden", &[Needs::Probe, Needs::Strace]).map_err(anyhow::Error::msg)?;
        let loaded = request.unit.load_on_host(&session)?;
        let original = &loaded.audited;
        let (mut job, check) = job_for(original, request, &reference, &maps)?;
        let notes = fit_for_host(&mut job, original);
        let service = &original.reference.name;
        let socket = format!("{}.socket", service.trim_end_matches(".service"));
        session.harden_writes(service, &socket);
        session.stop_for_now(&original.reference.unit_names()).map_err(anyhow::Error::msg)?;
        eprintln!("sandkasten-vm: harden [1/2] on this host: {service} as given, traced, then each candidate against the check");
        let (stdout, status) = session.run_job(&GuestJob::Harden(job)).map_err(anyhow::Error::msg)?;
        let mut report: HardenReport = guest_report(&stdout, status, |r: &mut HardenReport| &mut r.failures)?;
        report.guest.accel = "host".to_owned();
        report.notes.extend(notes);
        let mut outcome = HardenOutcome { unit: service.clone(), harden: report, audits: Vec::new() };
        let files = tempfile::tempdir()?;
        if let Some(units) = variants_to_audit(&out, original, &outcome, files.path())? {
            eprintln!("sandkasten-vm: harden [2/2] on this host: the audit of {service} as given beside each variant");
            outcome.audits = audits_on_host(&session, &units, &units_dir, Some(&check))?;
        }
        outcomes.push(outcome);
    } else {
        let mut opts = opts.clone();
        if !opts.packages.iter().any(|p| p == "strace") {
            opts.packages.push("strace".into());
        }
        let mut built = None;
        for &release in &opts.releases {
            // A unit a package ships is read from each release's image.
            let loaded = request.unit.load_for(&opts, release)?;
            let original = &loaded.audited;
            let (job, check) = job_for(original, request, &reference, &maps)?;
            // Built once the unit is known to be fine: a typo costs no build.
            let build = match built.take() {
                Some(build) => build,
                None => build()?,
            };
            let dir = stage_job(&build, &GuestJob::Harden(job))?;
            built = Some(build);
            let (_, guest_installs) =
                guest_installs(std::slice::from_ref(original), &loaded.installs, &request.unit.sysusers)?;
            payload::stage_installs(dir.path(), &guest_installs)?;

            eprintln!("sandkasten-vm: harden [1/2] {release:?}: the program as given, traced, then each candidate against the check");
            let run = run_plan(&opts, release, dir.path(), "harden")?;
            let mut report: HardenReport =
                guest_report(run.result(), run.status, |r: &mut HardenReport| &mut r.failures)?;
            report.guest.accel = run.accel.to_string();
            report.guest.image = Some(run.image.clone());
            let mut outcome =
                HardenOutcome { unit: original.reference.name.clone(), harden: report, audits: Vec::new() };
            let release_out =
                if opts.releases.len() > 1 { out.join(release.to_string()) } else { out.clone() };
            let files = tempfile::tempdir()?;
            if let Some(units) = variants_to_audit(&release_out, original, &outcome, files.path())? {
                eprintln!("sandkasten-vm: harden [2/2] {release:?}: the audit of the unit as given beside each variant, in one guest");
                let one = RunOptions { releases: vec![release], ..opts.clone() };
                outcome.audits =
                    run_audits(&one, &units, &loaded.installs, &request.unit.sysusers, Some(&check))?;
            }
            outcomes.push(outcome);
        }
    }
    let mut ok = true;
    for outcome in &outcomes {
        println!("{}", outcome.text());
        ok &= outcome.serves()
            && outcome.harden.failures.is_empty()
            && outcome.audits.iter().all(|a| a.failures.is_empty());
    }
    if let Some(path) = &request.json {
        write_json(path, &outcomes)?;
    }
    finish("harden", "done", ok, started);
    Ok(ok)
}

/// The guest side's job for `original` (the reference's candidates and the
/// lockdown wrapper; what the trace needs), and the check it runs.
fn job_for(
    original: &Audited,
    request: &HardenRequest,
    reference: &Reference,
    maps: &[AblationMap],
) -> anyhow::Result<(HardenJob, String)> {
    anyhow::ensure!(
        !original.reference.template(),
        "{}: harden takes a service started once; an Accept=yes template is not supported",
        request.unit.service.display()
    );
    let check = request.check.clone().unwrap_or_else(|| default_check(original));
    eprintln!("sandkasten-vm: harden: the check: {check}");
    let (mut candidates, denied_by_name) = harden::reference_candidates(reference, maps);
    candidates.extend(harden::lockdown_candidate(&original.reference.service));
    let service = &original.reference.service;
    let job = HardenJob {
        check: audit::program_check(original, &check),
        candidates,
        denied_by_name,
        try_socket: !request.no_socket,
        exec_start: service.get("Service", "ExecStart").unwrap_or_default().to_owned(),
        exec_start_pre: service
            .entries("Service")
            .filter(|(_, k, v)| *k == "ExecStartPre" && !v.is_empty())
            .map(|(_, _, v)| v.to_owned())
            .collect(),
        programs: audit::programs(service),
        on_host: request.host,
    };
    Ok((job, check))
}

/// What harden must not try on the admin's own machine, taken out of `job`
/// with a note each: `DynamicUser=` on a unit without it (systemd would
/// move the program's state, logs and cache to `/var/lib/private` and
/// hand them to a user that is gone afterwards), and the socket-activated
/// variant where a socket of its name is installed.
fn fit_for_host(job: &mut HardenJob, original: &Audited) -> Vec<String> {
    let mut notes = Vec::new();
    let dynamic = |c: &Candidate| c.lines.iter().any(|l| l.entry == "DynamicUser=yes");
    if original.reference.service.get("Service", "DynamicUser") != Some("yes")
        && job.candidates.iter().any(dynamic)
    {
        job.candidates.retain(|c| !dynamic(c));
        notes.push(
            "DynamicUser= was not tried on this host: systemd would move the program's state, logs and \
             cache under /var/lib/private (and back), owned by a user that exists only while it runs; \
             try it in a guest (sandkasten-vm harden without --host)"
                .to_owned(),
        );
    }
    let socket = format!("{}.socket", original.reference.name.trim_end_matches(".service"));
    if job.try_socket && crate::host_mode::loaded_from(&socket).is_some() {
        job.try_socket = false;
        notes.push(format!("no socket-activated variant: {socket} is installed on this host already"));
    }
    for note in &notes {
        eprintln!("sandkasten-vm: harden: {note}");
    }
    notes
}

/// Each variant's drop-in written to `out`, and the units to audit: the
/// unit as given and each variant (written to `files`); None when no
/// variant serves its check.
fn variants_to_audit(
    out: &Path,
    original: &Audited,
    outcome: &HardenOutcome,
    files: &Path,
) -> anyhow::Result<Option<Vec<Audited>>> {
    if !outcome.serves() {
        return Ok(None);
    }
    let mut units = vec![original.clone()];
    for variant in &outcome.harden.variants {
        write_variant(out, original, variant, &outcome.harden)?;
        units.push(audited_variant(files, original, variant)?);
    }
    Ok(Some(units))
}

/// A variant as the audit runs it: the unit with its drop-in merged, under
/// a name of its own (`NAME-own-port.service`), written to `dir`.
fn audited_variant(dir: &Path, original: &Audited, variant: &Variant) -> anyhow::Result<Audited> {
    let stem = original.reference.name.trim_end_matches(".service");
    let name = format!("{stem}-{}.service", variant.name);
    let reference = harden::hardened(&original.reference, variant, &name).map_err(anyhow::Error::msg)?;
    let mut files = vec![dir.join(&name)];
    std::fs::write(&files[0], reference.service.render())?;
    if let Some((socket_name, socket)) = &reference.socket {
        files.push(dir.join(socket_name));
        std::fs::write(&files[1], socket.render())?;
    }
    Ok(Audited { reference, files })
}

/// The variant's drop-in (and socket) where the user installs them: the
/// program's own port in `out/UNIT.service.d/`, the socket-activated one
/// in `out/socket-activated/`.
fn write_variant(
    out: &Path,
    original: &Audited,
    variant: &Variant,
    report: &HardenReport,
) -> anyhow::Result<()> {
    let service = &original.reference.name;
    let dir = match &variant.socket {
        Some(_) => out.join("socket-activated"),
        None => out.to_owned(),
    };
    let drop_in_dir = dir.join(format!("{service}.d"));
    std::fs::create_dir_all(&drop_in_dir)
        .with_context(|| format!("cannot create {}", drop_in_dir.display()))?;
    let mut base = Vec::new();
    if let Some((socket, text)) = &variant.socket {
        base = DropInLine::with_socket(socket);
        let path = dir.join(socket);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("sandkasten-vm: wrote {}", path.display());
    }
    let kept: Vec<_> = variant.kept().collect();
    let g = &report.guest;
    let check = report.as_given.as_ref().map_or("", |c| c.check.as_str());
    let machine = match g.accel.as_str() {
        "host" => format!("this host ({}, systemd {}, kernel {})", g.release, g.systemd, g.kernel),
        _ => format!("Debian {} (systemd {}, kernel {})", g.release, g.systemd, g.kernel),
    };
    let header = format!(
        "# Written by sandkasten-vm harden for {service} ({} variant), measured on {machine}.\n\
         # Each line was kept only while {check} still passed; \
         `sandkasten-vm harden` prints what it dropped and why.\n\n",
        variant.name
    );
    let path = drop_in_dir.join(DROP_IN);
    std::fs::write(&path, header + &render_drop_in(&base, &kept, true))
        .with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!("sandkasten-vm: wrote {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_check_speaks_http_to_what_looks_like_http() {
        let dir = tempfile::tempdir().unwrap();
        let service = dir.path().join("web.service");
        std::fs::write(&service, "[Service]\nExecStart=/usr/bin/python3 -m http.server 8000\n").unwrap();
        assert!(default_check(&audit::load(&service, None).unwrap()).contains("GET / HTTP/1.0"));
        std::fs::write(&service, "[Service]\nExecStart=/usr/bin/memcached -p 11211\n").unwrap();
        let check = default_check(&audit::load(&service, None).unwrap());
        assert!(check.starts_with("exec 3<>/dev/tcp/127.0.0.1/$PORT") && !check.contains("GET"), "{check}");
    }
}
