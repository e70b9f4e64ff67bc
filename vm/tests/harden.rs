//! `sandkasten-vm harden` in a real guest (TCG, minutes each): a unit of
//! one's own made as tight as its real program allows, and proven by the
//! audit beside the unit as given.

use std::path::Path;

use sandkasten_vm::audit::Finding;
use sandkasten_vm::contract::harden::Variant;
use sandkasten_vm::harden::HardenOutcome;

use crate::util::{one_guest_at_a_time, sandkasten_vm};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// `harden UNIT --accel tcg ARGS... --out DIR --json DIR/outcome.json`:
/// its exit status, what it printed and its outcome.
fn harden(unit: &str, args: &[&str], dir: &Path) -> (Option<i32>, String, HardenOutcome) {
    let json = dir.join("outcome.json");
    let mut all = vec!["harden", unit, "--accel", "tcg", "--out"];
    let out_dir = dir.display().to_string();
    let json_path = json.display().to_string();
    all.push(&out_dir);
    all.extend(["--json", &json_path]);
    all.extend_from_slice(args);
    let out = sandkasten_vm(&all);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let text =
        std::fs::read_to_string(&json).unwrap_or_else(|e| panic!("no outcome ({e}): {stdout}\n{stderr}"));
    let mut outcomes: Vec<HardenOutcome> = serde_json::from_str(&text).unwrap();
    (out.status.code(), stdout, outcomes.remove(0))
}

fn escaped(outcome: &HardenOutcome, audit: usize) -> usize {
    outcome.audits[audit].rows.iter().filter(|r| r.verdict == Finding::Escaped).count()
}

/// Every directive line of a drop-in follows a comment that says what it
/// stops (a line that shares its group's comment follows another entry).
fn assert_commented(drop_in: &str) {
    let mut previous = "";
    for line in drop_in.lines().filter(|l| !l.is_empty()) {
        if line.contains('=') && !line.starts_with('#') {
            assert!(
                previous.starts_with('#') || previous.contains('='),
                "{line} has no comment above it:\n{drop_in}"
            );
        }
        previous = line;
    }
}

/// The workshop's own example: Python's http.server, as root, no
/// hardening. Harden finds a drop-in under which the real server still
/// serves the lab's site, drops what breaks it (its network, /srv hidden)
/// with the check's own failure as evidence, and the audit beside the unit
/// as given leaves a fraction of the escapes, each one explained.
#[test]
fn harden_keeps_the_labs_python_server_serving_and_explains_every_escape_left() {
    let Some(_guest) = one_guest_at_a_time() else { return };
    let dir = tempfile::tempdir().unwrap();
    let unit = format!("{ROOT}/units/lab/examples/python-http.service");
    let www = format!("{ROOT}/units/lab/examples/www:/srv/www");
    let (status, stdout, outcome) = harden(&unit, &["--package", "python3", "--files", &www], dir.path());
    let own = own_port_serves(status, &stdout, &outcome);
    let dropped = |label: &str| own.steps.iter().find(|s| !s.kept && s.candidate.label == label);
    let srv = dropped("TemporaryFileSystem=/srv:ro").expect("hiding /srv breaks a server of /srv/www");
    assert!(srv.evidence.contains("404"), "the evidence is the program's own answer: {}", srv.evidence);
    assert!(dropped("PrivateNetwork=").is_some(), "a program that binds its own port needs its network");

    let drop_in = commented_drop_in(dir.path(), "python-http.service");
    for line in
        ["DynamicUser=yes", "NoExecPaths=/ /tmp /var/tmp", "ExecPaths=", "RestrictAddressFamilies=AF_"]
    {
        assert!(drop_in.contains(line), "{line} missing:\n{drop_in}");
    }
    assert!(
        drop_in.contains("sandkasten-lockdown /usr/bin/python3"),
        "the wrapper serves Python too:\n{drop_in}"
    );

    let (was, left) = serves_and_explains(&outcome, &stdout);
    assert!(left * 4 < was, "{was} escapes as given, {left} hardened:\n{stdout}");
}

/// harden exited 0 and its first variant, the program on its own port,
/// serves its check under everything kept.
fn own_port_serves<'a>(status: Option<i32>, stdout: &str, outcome: &'a HardenOutcome) -> &'a Variant {
    assert_eq!(status, Some(0), "{stdout}");
    let own = &outcome.harden.variants[0];
    assert_eq!(own.name, "own-port");
    assert!(own.hardened.as_ref().is_some_and(|c| c.ok), "{stdout}");
    own
}

/// The drop-in harden wrote for `service` into `dir`, every line commented.
fn commented_drop_in(dir: &Path, service: &str) -> String {
    let drop_in =
        std::fs::read_to_string(dir.join(format!("{service}.d/50-sandkasten-harden.conf"))).unwrap();
    assert_commented(&drop_in);
    drop_in
}

/// The audit of the unit as given beside its own-port variant, in one
/// guest: the hardened unit's real program serves there too, and every
/// escape left is explained. The escapes before and after.
fn serves_and_explains(outcome: &HardenOutcome, stdout: &str) -> (usize, usize) {
    let [before, after, ..] = &outcome.audits[..] else { panic!("two audits: {stdout}") };
    assert!(after.checks.iter().all(|c| c.ok) && !after.checks.is_empty(), "{stdout}");
    assert!(before.failures.is_empty() && after.failures.is_empty(), "{stdout}");
    for row in after.rows.iter().filter(|r| r.verdict == Finding::Escaped) {
        let line = format!("  {} ({}): ", row.attempt, row.goal);
        assert!(stdout.contains(&line), "{} escaped and is not explained:\n{stdout}", row.attempt);
    }
    assert!(stdout.contains("escapes per goal"), "{stdout}");
    (escaped(outcome, 0), escaped(outcome, 1))
}

/// nginx as Debian ships it (its unit read from the package in the image:
/// Type=forking, a PID file in /run, root binding port 80 and changing to
/// www-data). It keeps serving its own default page under the drop-in, keeps
/// only the capabilities it cannot start without (port 80 is one), and
/// loses more than half its escapes.
#[test]
fn harden_keeps_debians_nginx_serving_with_only_the_capabilities_it_needs() {
    let Some(_guest) = one_guest_at_a_time() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (status, stdout, outcome) = harden("nginx.service", &["--package", "nginx"], dir.path());
    let own = own_port_serves(status, &stdout, &outcome);
    let port_80 =
        own.steps.iter().find(|s| s.candidate.label == "CapabilityBoundingSet=~CAP_NET_BIND_SERVICE");
    let port_80 = port_80.unwrap_or_else(|| panic!("each capability tried on its own:\n{stdout}"));
    assert!(!port_80.kept && port_80.evidence.contains("bind()"), "{}", port_80.evidence);
    let drop_in = commented_drop_in(dir.path(), "nginx.service");
    assert!(drop_in.contains("\nCapabilityBoundingSet=~CAP_CHOWN"), "{drop_in}");
    let (was, left) = serves_and_explains(&outcome, &stdout);
    assert!(left * 2 < was, "{was} escapes as shipped, {left} hardened:\n{stdout}");
}

/// memcached as Debian ships it: a Perl wrapper that reads
/// /etc/memcached.conf and runs memcached as root, which changes to its own
/// user. A check of the user's own (a value set and read back) passes under
/// the drop-in; the wrapper's interpreter may run, nothing else new.
#[test]
fn harden_keeps_debians_memcached_answering_its_own_check() {
    let Some(_guest) = one_guest_at_a_time() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (status, stdout, outcome) =
        harden("memcached.service", &["--package", "memcached", "--check", MEMCACHED_CHECK], dir.path());
    own_port_serves(status, &stdout, &outcome);
    let drop_in = commented_drop_in(dir.path(), "memcached.service");
    assert!(drop_in.contains("/usr/bin/perl"), "the wrapper's interpreter may run:\n{drop_in}");
    let (was, left) = serves_and_explains(&outcome, &stdout);
    assert!(left * 2 < was, "{was} escapes as shipped, {left} hardened:\n{stdout}");
}

/// A value set and read back: what a memcached client needs.
const MEMCACHED_CHECK: &str = "exec 3<>/dev/tcp/127.0.0.1/$PORT && \
     printf 'set k 0 0 2\\r\\nok\\r\\nget k\\r\\nquit\\r\\n' >&3 && grep -q '^VALUE k 0 2' <&3";

/// Lab step 0: sandkasten-http as root, binding its own port. The program
/// takes a socket from systemd when one is passed, so harden proposes it
/// socket-activated in a private network, and that variant closes every
/// route the catalogue has: it rediscovers the reference unit.
#[test]
fn harden_rediscovers_the_reference_sandbox_for_lab_step_0() {
    let Some(_guest) = one_guest_at_a_time() else { return };
    let dir = tempfile::tempdir().unwrap();
    let unit = format!("{ROOT}/units/lab/sandkasten-lab0.service");
    let (status, stdout, outcome) = harden(&unit, &[], dir.path());
    assert_eq!(status, Some(0), "{stdout}");
    let socket = outcome.harden.variants.iter().position(|v| v.name == "socket-activated");
    let socket = socket.unwrap_or_else(|| panic!("a socket-activated variant: {stdout}"));
    let variant = &outcome.harden.variants[socket];
    assert!(variant.hardened.as_ref().is_some_and(|c| c.ok), "{stdout}");
    assert!(variant.kept().any(|c| c.label == "PrivateNetwork="), "{stdout}");
    assert_eq!(escaped(&outcome, socket + 1), 0, "{stdout}");
    assert!(dir.path().join("socket-activated/sandkasten-lab0.socket").is_file());
    assert!(dir
        .path()
        .join("socket-activated/sandkasten-lab0.service.d/50-sandkasten-harden.conf")
        .is_file());
}
