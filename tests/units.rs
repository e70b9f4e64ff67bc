//! The reference units and the lab steps, checked with systemd's own tools
//! where no binary of ours is needed: exposure scores (`systemd-analyze
//! security --offline=true`), the egress guard with `systemd-analyze
//! verify`, and the directives and comments that make them the reference.
//! Each server's crate checks the units that run it against its own binary
//! (services/*/tests/units.rs, through `sandkasten_tests::units`); the test
//! here makes sure every unit has such an owner.

use std::collections::BTreeSet;
use std::path::Path;

use sandkasten_tests::units::{
    analyze, dir as units_dir, reference, service_section, values, verify, EGRESS_GUARD,
};

/// The reference services and the most `systemd-analyze security` may say.
use sandkasten_vm_contract::reference::{SERVICES as REFERENCE_SERVICES, SOCKETS as REFERENCE_SOCKETS};
const MAX_EXPOSURE: f64 = 0.2;

/// Calls no server may have: `@system-service` allows the first three on
/// systemd 252; the rest would let a compromised server re-aim a handed-over
/// socket (connect, shutdown) or run written code (memfd_create, mremap).
const MUST_DENY: [&str; 7] =
    ["io_uring_setup", "userfaultfd", "keyctl", "connect", "shutdown", "memfd_create", "mremap"];

/// The mark the egress guard knows the reference sockets by.
const EGRESS_MARK: &str = "29547";

/// The overall exposure `systemd-analyze security --offline=true` gives.
fn exposure(unit: &Path) -> f64 {
    let (_, text) = analyze(&["security", "--offline=true", unit.to_str().unwrap()]);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure for {}:\n{text}", unit.display()));
    let value = line.rsplit(": ").next().unwrap().split_whitespace().next().unwrap();
    value.parse().unwrap_or_else(|_| panic!("unparsable exposure line {line:?}"))
}

#[test]
fn every_reference_service_scores_at_most_0_2() {
    let scores: Vec<(&str, f64)> =
        REFERENCE_SERVICES.iter().map(|unit| (*unit, exposure(&units_dir().join(unit)))).collect();
    for (unit, score) in &scores {
        assert!(*score <= MAX_EXPOSURE, "{unit} scores {score}, more than {MAX_EXPOSURE}: {scores:?}");
    }
}

/// Every unit in units/ and units/lab/ is checked against the binary it
/// runs by that binary's crate (or is the egress guard, checked here):
/// listed once in `owners()`, under the binary its `ExecStart=` runs.
#[test]
fn every_unit_has_the_crate_of_its_binary_as_owner() {
    let mut on_disk = BTreeSet::new();
    for sub in ["", "lab"] {
        for entry in std::fs::read_dir(units_dir().join(sub)).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if name.ends_with(".service") || name.ends_with(".socket") {
                on_disk.insert(Path::new(sub).join(name).to_str().unwrap().to_owned());
            }
        }
    }
    let mut owned = BTreeSet::from([EGRESS_GUARD.to_owned()]);
    for (binary, units) in sandkasten_tests::units::owners() {
        for unit in units {
            assert!(owned.insert(unit.to_string()), "{unit} is listed twice in owners()");
            if unit.ends_with(".service") {
                let exec_start = values(reference(unit), "ExecStart").join(" ");
                let program = exec_start.split_whitespace().next().unwrap_or_default();
                assert!(
                    Path::new(program).file_name().is_some_and(|p| p.to_str() == Some(binary)),
                    "{unit} runs {program:?}, but owners() lists it under {binary}"
                );
            }
        }
    }
    assert_eq!(on_disk, owned, "units/ and sandkasten_tests::units::owners() differ");
}

#[test]
fn the_egress_guard_passes_verify() {
    verify(&[EGRESS_GUARD], &[]);
}

#[test]
fn every_reference_service_has_the_core_of_the_sandbox() {
    for unit in REFERENCE_SERVICES {
        let unit = reference(unit);
        let one = |key: &str| values(&unit, key).join(" ");
        assert_eq!(one("DynamicUser"), "yes", "{unit}");
        assert_eq!(one("PrivateNetwork"), "yes", "{unit}");
        assert_eq!(one("ProtectSystem"), "strict", "{unit}");
        assert_eq!(one("CapabilityBoundingSet"), "", "{unit}: no capabilities");
        assert_eq!(one("RestrictAddressFamilies"), "AF_UNIX", "{unit}");
        assert_eq!(one("Type"), "notify", "{unit}");
        assert!(!one("WatchdogSec").is_empty(), "{unit}: no watchdog");
        let filters = values(&unit, "SystemCallFilter");
        let allow =
            filters.iter().find(|f| !f.starts_with('~')).unwrap_or_else(|| panic!("{unit}: no allow-list"));
        assert!(!allow.contains('@'), "{unit}: the allow-list should name calls, not groups: {allow}");
        let deny: Vec<&str> =
            filters.iter().filter_map(|f| f.strip_prefix('~')).flat_map(str::split_whitespace).collect();
        for call in MUST_DENY {
            assert!(!allow.split_whitespace().any(|c| c == call), "{unit} allows {call}");
            assert!(deny.contains(&call), "{unit} does not deny {call} by name");
        }
    }
}

#[test]
fn every_sandbox_directive_has_a_comment() {
    for unit in REFERENCE_SERVICES {
        let lines = service_section(reference(unit));
        // From the first "# --- group" marker on, every run of directives
        // starts right below a comment.
        let start =
            lines.iter().position(|l| l.starts_with("# ---")).unwrap_or_else(|| panic!("{unit}: no groups"));
        let mut previous = "";
        for line in &lines[start..] {
            let directive = !line.is_empty() && !line.starts_with('#');
            if directive && previous.is_empty() {
                panic!("{unit}: {line:?} has no comment above it");
            }
            previous = line;
        }
    }
}

#[test]
fn every_reference_socket_is_marked_and_guarded() {
    let rules = std::fs::read_to_string(units_dir().join("sandkasten-egress.nft")).unwrap();
    assert!(
        rules.matches(&format!("meta mark {EGRESS_MARK} ")).count() >= 2,
        "the egress guard's rules do not match mark {EGRESS_MARK} for TCP and the rest:\n{rules}"
    );
    for socket in REFERENCE_SOCKETS.iter().chain(["lab/sandkasten-lab4.socket"].iter()) {
        let text = std::fs::read_to_string(units_dir().join(socket)).unwrap();
        let has = |line: &str| text.lines().any(|l| l == line);
        assert!(has(&format!("Mark={EGRESS_MARK}")), "{socket}: no Mark={EGRESS_MARK}");
        assert!(has("Requires=sandkasten-egress.service"), "{socket}: does not require the egress guard");
        assert!(has("After=sandkasten-egress.service"), "{socket}: may start before the egress guard");
    }
}

#[test]
fn the_egress_guard_runs_sandboxed_itself() {
    let score = exposure(&units_dir().join("sandkasten-egress.service"));
    // Its floor: the host's network (0.5) and CAP_NET_ADMIN (0.2) are the job.
    assert!(score <= 1.1, "sandkasten-egress.service scores {score}, more than 1.1");
}

#[test]
fn every_reference_service_switches_the_lockdown_on() {
    for unit in REFERENCE_SERVICES {
        let unit = reference(unit);
        assert!(
            values(&unit, "Environment").iter().any(|e| e == "SANDKASTEN_LOCKDOWN=1"),
            "{unit}: no Environment=SANDKASTEN_LOCKDOWN=1"
        );
        let allow = values(&unit, "SystemCallFilter").into_iter().find(|f| !f.starts_with('~')).unwrap();
        for call in ["seccomp", "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self"] {
            assert!(allow.split_whitespace().any(|c| c == call), "{unit}: the lockdown needs {call}");
        }
    }
}

#[test]
fn lab_step_4_is_the_reference_unit() {
    let reference = service_section(reference("sandkasten-http.service"));
    let step4 = service_section(units_dir().join("lab/sandkasten-lab4.service").to_str().unwrap());
    assert_eq!(step4, reference, "units/lab/sandkasten-lab4.service drifted from the reference");
}

/// What a reference service may set differently from the others, each with
/// its reason. Everything else is one sandbox.
const MAY_DIFFER: [(&str, &str); 7] = [
    ("ExecStart=", "each runs its own server with its own arguments"),
    ("Restart=", "an Accept=yes instance serves one connection and must not restart"),
    ("RestartSec=", "only a restarting service waits between starts"),
    ("Environment=SANDKASTEN_THREADS=", "echo's work is tiny: fewer threads, fewer tasks"),
    ("TasksMax=", "sized to the threads each server runs"),
    ("MemoryMax=", "sized to what each server holds: files for http and gopher, a buffer for echo"),
    ("LimitNOFILE=", "sized to the connections each serves: one for an Accept=yes instance"),
];

/// Whether `line` may differ between the reference services: one of
/// [`MAY_DIFFER`], or the system-call allow-list, derived per server from
/// the calls its own code makes (scripts/syscalls). The deny-list is shared.
fn may_differ(line: &str) -> bool {
    let allow_list = line.starts_with("SystemCallFilter=") && !line.starts_with("SystemCallFilter=~");
    allow_list || MAY_DIFFER.iter().any(|(own, _)| line.starts_with(own))
}

/// The four reference services share one sandbox: a line added to one and
/// forgotten in another (or a value changed in one) fails here, with the
/// line named. Lab step 4 is held to the http unit by the test above.
#[test]
fn the_reference_services_share_one_sandbox() {
    let sandbox = |name: &str| -> Vec<String> {
        service_section(reference(name))
            .into_iter()
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty() && !l.starts_with('#') && !may_differ(l))
            .collect()
    };
    let first = sandbox(REFERENCE_SERVICES[0]);
    assert!(first.len() > 30, "too few shared lines to mean anything: {first:?}");
    for name in &REFERENCE_SERVICES[1..] {
        let other = sandbox(name);
        let missing: Vec<&String> = first.iter().filter(|l| !other.contains(l)).collect();
        let extra: Vec<&String> = other.iter().filter(|l| !first.contains(l)).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{name} drifted from {}: lacks {missing:?}, adds {extra:?}",
            REFERENCE_SERVICES[0]
        );
    }
}
