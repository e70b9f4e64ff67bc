//! `sandkasten-vm harden`: a unit of one's own, made as tight as its real
//! program allows, and proven: one boot finds the drop-in (the guest
//! side's harden), a second audits the unit as given beside each hardened
//! variant.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;

use super::audit::{guest_installs, run_audits, YourUnit};
use super::{ablation_maps, build, finish, guest_report, run_plan, stage_job, write_json, RunOptions};
use crate::audit::{self, Audited};
use crate::contract::harden::{render_drop_in, DropInLine, HardenJob, HardenReport, Variant, DROP_IN};
use crate::contract::GuestJob;
use crate::harden::{self, HardenOutcome};
use crate::passes;
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

/// `sandkasten-vm harden`: true when on every release a hardened variant
/// serves the check and its audit is complete.
pub fn harden(opts: &RunOptions, request: &HardenRequest) -> anyhow::Result<bool> {
    let started = Instant::now();
    let mut opts = opts.clone();
    if !opts.packages.iter().any(|p| p == "strace") {
        opts.packages.push("strace".into());
    }
    let units_dir = payload::workspace_root().join("units");
    let reference = passes::load_reference(&units_dir, harden::REFERENCE)?;
    let maps = ablation_maps(&units_dir)?;
    let build = build()?;
    let out = match &request.out {
        Some(out) => out.clone(),
        None if request.unit.packaged() => PathBuf::from("."),
        None => request.unit.service.parent().map_or_else(|| PathBuf::from("."), Path::to_owned),
    };
    let mut outcomes = Vec::new();
    let mut ok = true;
    for &release in &opts.releases {
        // A unit a package ships is read from each release's image.
        let loaded = request.unit.load_for(&opts, release)?;
        let original = &loaded.audited;
        anyhow::ensure!(
            !original.reference.template(),
            "{}: harden takes a service started once; an Accept=yes template is not supported",
            request.unit.service.display()
        );
        let check = request.check.clone().unwrap_or_else(|| default_check(original));
        eprintln!("sandkasten-vm: harden: the check: {check}");
        let (mut candidates, denied_by_name) = harden::reference_candidates(&reference, &maps);
        candidates.extend(harden::lockdown_candidate(&original.reference.service));
        let job = GuestJob::Harden(HardenJob {
            check: audit::program_check(original, &check),
            candidates,
            denied_by_name,
            try_socket: !request.no_socket,
            exec_start: original.reference.service.get("Service", "ExecStart").unwrap_or_default().to_owned(),
            exec_start_pre: original
                .reference
                .service
                .entries("Service")
                .filter(|(_, k, v)| *k == "ExecStartPre" && !v.is_empty())
                .map(|(_, _, v)| v.to_owned())
                .collect(),
            programs: audit::programs(&original.reference.service),
        });
        let dir = stage_job(&build, &job)?;
        let (_, guest_installs) =
            guest_installs(std::slice::from_ref(original), &loaded.installs, &request.unit.sysusers)?;
        payload::stage_installs(dir.path(), &guest_installs)?;

        eprintln!("sandkasten-vm: harden [1/2] {release:?}: the program as given, traced, then each candidate against the check");
        let run = run_plan(&opts, release, dir.path(), "harden")?;
        let mut report: HardenReport =
            guest_report(run.result(), run.status, |r: &mut HardenReport| &mut r.failures)?;
        report.guest.accel = run.accel.to_string();
        let mut outcome =
            HardenOutcome { unit: original.reference.name.clone(), harden: report, audits: Vec::new() };
        if !outcome.harden.variants.iter().any(|v| v.hardened.as_ref().is_some_and(|c| c.ok)) {
            println!("{}", outcome.text());
            ok = false;
            outcomes.push(outcome);
            continue;
        }
        let release_out = if opts.releases.len() > 1 { out.join(release.to_string()) } else { out.clone() };
        for variant in &outcome.harden.variants {
            write_variant(&release_out, original, variant, &outcome.harden)?;
        }
        eprintln!("sandkasten-vm: harden [2/2] {release:?}: the audit of the unit as given beside each variant, in one guest");
        let files = tempfile::tempdir()?;
        let mut units = vec![original.clone()];
        for variant in &outcome.harden.variants {
            units.push(audited_variant(files.path(), original, variant)?);
        }
        let one = RunOptions { releases: vec![release], ..opts.clone() };
        outcome.audits = run_audits(&one, &units, &loaded.installs, &request.unit.sysusers, Some(&check))?;
        println!("{}", outcome.text());
        ok &= outcome.harden.failures.is_empty() && outcome.audits.iter().all(|a| a.failures.is_empty());
        outcomes.push(outcome);
    }
    if let Some(path) = &request.json {
        write_json(path, &outcomes)?;
    }
    finish("harden", "done", ok, started);
    Ok(ok)
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
    let header = format!(
        "# Written by sandkasten-vm harden for {service} ({} variant), measured on Debian {} \
         (systemd {}, kernel {}).\n# Each line was kept only while {check} still passed; \
         `sandkasten-vm harden` prints what it dropped and why.\n\n",
        variant.name, g.release, g.systemd, g.kernel
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
