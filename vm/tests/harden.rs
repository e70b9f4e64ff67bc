//! `sandkasten-vm harden` in a real guest (TCG, minutes each): a unit of
//! one's own made as tight as its real program allows, and proven by the
//! audit beside the unit as given.

use std::path::Path;

use sandkasten_vm::audit::Finding;
use sandkasten_vm::contract::harden::Variant;
use sandkasten_vm::harden::HardenOutcome;

use crate::util::{copy_tree, host_mode_payload, one_guest_at_a_time, sandkasten_vm};

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

/// `harden` on one of the lab's Python examples (`units/lab/examples/`),
/// with Python in the guest and the lab's site at /srv/www.
fn harden_lab_example(service: &str, args: &[&str], dir: &Path) -> (Option<i32>, String, HardenOutcome) {
    let unit = format!("{ROOT}/units/lab/examples/{service}");
    let www = format!("{ROOT}/units/lab/examples/www:/srv/www");
    let mut all = vec!["--package", "python3", "--files", &www];
    all.extend_from_slice(args);
    harden(&unit, &all, dir)
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
    let (status, stdout, outcome) = harden_lab_example("python-http.service", &[], dir.path());
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

/// The lab's baseline example (the widely shared directives, a writable
/// /srv hidden by none) on Debian 13, whose systemd enforces
/// `SocketBindAllow=`: the real server serves under the drop-in, and the
/// audit beside the unit as given leaves at most a quarter of the escapes,
/// each explained.
#[test]
fn harden_keeps_the_labs_baseline_example_serving_on_trixie() {
    let Some(_guest) = one_guest_at_a_time() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (status, stdout, outcome) =
        harden_lab_example("python-http-baseline.service", &["--release", "trixie"], dir.path());
    assert_eq!(outcome.harden.guest.release, "trixie");
    own_port_serves(status, &stdout, &outcome);
    let drop_in = commented_drop_in(dir.path(), "python-http-baseline.service");
    assert!(drop_in.contains("\nSocketBindAllow=8000\n"), "{drop_in}");
    let listen = outcome.audits[1].rows.iter().find(|r| r.attempt == "net.listen-new").unwrap();
    assert_ne!(listen.verdict, Finding::Escaped, "13's systemd holds a new listener to the port:\n{stdout}");
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

/// `harden --host` and `audit --host` on a machine whose PID 1 is systemd:
/// the trixie guest, where the lab's dynamic example is installed and
/// running as an admin would have it. Interrupted while it tries
/// candidates, everything it wrote is gone and the service runs again; run
/// to its end, the real server serves under the drop-in and the audit
/// beside it explains every escape left, the service runs again. `audit
/// --host --check` on a unit that hides the site says in capitals that the
/// program does not serve, and fails.
#[test]
fn harden_on_the_host_leaves_the_service_running_and_nothing_behind_even_when_interrupted() {
    use sandkasten_vm::{payload, AccelRequest, Config, Guest, Release};

    let Some(_guest) = one_guest_at_a_time() else { return };
    let dir = host_mode_payload(HOST_SCRIPT);
    copy_tree(&payload::workspace_root().join("units/lab/examples"), dir.path(), &["", "www"]);

    let mut config = Config::new(Release::Trixie);
    config.accel = AccelRequest::Tcg;
    config.payload_dir = Some(dir.path().to_path_buf());
    config.packages = vec!["python3".into(), "strace".into()];
    config.timeout = Some(std::time::Duration::from_secs(1500));
    let run = Guest::boot(&config).expect("guest run");
    let stderr = String::from_utf8_lossy(&run.stderr);
    let said = String::from_utf8_lossy(run.result()).into_owned();
    let section = |name: &str| -> String {
        let mut lines = said.lines().skip_while(|l| *l != format!("== {name}"));
        assert!(lines.next().is_some(), "no {name}:\n{said}\n{stderr}");
        lines.take_while(|l| !l.starts_with("== ")).collect::<Vec<_>>().join("\n")
    };
    assert_eq!(section("interrupted"), "130", "Ctrl-C ends it with 130:\n{stderr}");
    assert_eq!(section("left after the interrupt"), "", "what it wrote is gone:\n{stderr}");
    assert_eq!(section("state after the interrupt"), "active", "the service runs again:\n{stderr}");

    assert_eq!(section("harden"), "0", "{stderr}");
    assert_eq!(section("left after harden"), "", "{stderr}");
    assert_eq!(section("state after harden"), "active", "{stderr}");
    let stdout = section("stdout");
    let mut outcomes: Vec<HardenOutcome> = serde_json::from_str(&section("outcome")).unwrap();
    let outcome = outcomes.remove(0);
    assert_eq!(outcome.harden.guest.accel, "host");
    own_port_serves(Some(0), &stdout, &outcome);
    let drop_in = section("drop-in");
    assert!(drop_in.contains("measured on this host (trixie, systemd 257"), "{drop_in}");
    assert!(drop_in.contains("sandkasten-lockdown /usr/bin/python3"), "{drop_in}");
    let (was, left) = serves_and_explains(&outcome, &stdout);
    assert!(left * 4 < was, "{was} escapes as given, {left} hardened:\n{stdout}");

    let audit = section("audit of a unit that hides the site");
    assert!(audit.starts_with("1\n"), "a program that does not serve fails the audit:\n{audit}");
    assert!(audit.contains("THE PROGRAM DOES NOT SERVE"), "{audit}");
    assert!(audit.contains("code 404"), "it fails for the site it cannot see, its journal says:\n{audit}");
}

/// The guest's side of the host-mode test: each answer under `== NAME`.
const HOST_SCRIPT: &str = r#"#!/bin/bash
vm=/usr/libexec/sandkasten/sandkasten-vm
unit=python-http-dynamic.service
cd /tmp  # the unit's name alone is the installed unit; in /payload it is a file
mkdir -p /srv && cp -r /payload/www /srv/www
cp /payload/$unit /etc/systemd/system/ && systemctl daemon-reload && systemctl start $unit
ls -R /run/systemd/system /run/sandkasten-harden > /tmp/before 2>&1
left() { ls -R /run/systemd/system /run/sandkasten-harden 2>&1 | diff /tmp/before - | grep '^[<>]'; }

$vm harden --host $unit --units /payload/units --out /tmp/interrupted >&2 &
pid=$!
for _ in $(seq 600); do
    [ -e /run/systemd/system/$unit.d/50-sandkasten-harden.conf ] || ! kill -0 $pid 2>/dev/null && break
    sleep 0.5
done
kill -INT $pid
wait $pid
status=$?
echo "== interrupted"; echo $status
echo "== left after the interrupt"; left
echo "== state after the interrupt"; systemctl is-active $unit

$vm harden --host $unit --units /payload/units --out /tmp/h --json /tmp/h.json > /tmp/h.out
status=$?
echo "== harden"; echo $status
echo "== left after harden"; left
echo "== state after harden"; systemctl is-active $unit
echo "== stdout"; cat /tmp/h.out
echo "== outcome"; cat /tmp/h.json; echo
echo "== drop-in"; cat /tmp/h/$unit.d/50-sandkasten-harden.conf

# Not on the port the blind copy needs: its check must fail for the site.
systemctl stop $unit
sed 's|^\[Service\]$|[Service]\nTemporaryFileSystem=/srv:ro|' /payload/$unit > /tmp/python-http-blind.service
check='exec 3<>/dev/tcp/127.0.0.1/$PORT && printf "GET / HTTP/1.0\r\n\r\n" >&3 && head -n 1 <&3 | grep " 200 "'
$vm audit --host /tmp/python-http-blind.service --units /payload/units --check "$check" > /tmp/a.out 2>&1
status=$?
echo "== audit of a unit that hides the site"; echo $status; cat /tmp/a.out
echo "== end"
"#;
