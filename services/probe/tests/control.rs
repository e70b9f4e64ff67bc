//! The unsandboxed control: as root with nothing in the way, every attempt
//! this machine allows must report `escaped`, and the rest `unsupported`.
//!
//! The expected set is exact. The few attempts that depend on the machine
//! are decided by an oracle written here, independent of the probe's own
//! detection, so a probe that stops detecting an escape fails this test.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use sandkasten_probe::catalogue::ATTEMPTS;
use sandkasten_probe::verdict::Outcome;
use sandkasten_probe::verdict::VerdictKind::{Escaped, Unsupported};

use crate::util::{self, Bus, Canary, Expect, TempDir};

/// Attempts whose escape the canary sees (a token, a signal, a tracer).
const SEEN_BY_CANARY: &[&str] = &[
    "net.tcp-loopback",
    "net.tcp-lan",
    "net.udp-send",
    "net.listen-new",
    "net.handover-accepted",
    "net.handover-udp",
    "net.handover-unspec",
    "net.handover-shutdown",
    "net.handover-fastopen",
    "net.abstract-unix",
    "net.unix-path",
    "net.unix-dgram",
    "priv.ptrace",
    "priv.signal",
    "ipc.sysv",
    "ipc.mqueue",
];

/// Attempts that leave a marker file in a host directory.
const MARKERS: &[&str] =
    &["fs.write-etc", "fs.write-usr", "fs.write-var", "fs.write-content", "fs.tmp-shared", "fs.shm-shared"];

/// Machine-dependent attempts: escaped where the machine has the feature,
/// unsupported where it does not. Each oracle looks at the host directly;
/// call it in the network namespace the probe will run in.
fn machine_oracle() -> BTreeMap<&'static str, bool> {
    let non_empty = |d: &str| std::fs::read_dir(d).map(|mut r| r.next().is_some()).unwrap_or(false);
    let first_disk = std::fs::read_dir("/sys/block")
        .map(|r| {
            let mut names: Vec<String> =
                r.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
            names.sort();
            names
                .into_iter()
                .find(|n| ["sd", "vd", "xvd", "nvme", "hd", "mmcblk"].iter().any(|p| n.starts_with(p)))
        })
        .ok()
        .flatten();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let cap_bnd = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    // The kernel's policy for sockets that have been listeners.
    let former_listener_connects = util::former_listener_connects();
    let mut oracle = BTreeMap::from([
        // No modules directory on a kernel without loadable modules.
        ("fs.modules-dir", non_empty("/usr/lib/modules")),
        // Some machines forbid even root to open the disk (an LSM here).
        ("dev.disk", first_disk.is_some_and(|d| std::fs::File::open(format!("/dev/{d}")).is_ok())),
        // CONFIG_DEVMEM / CONFIG_DEVPORT.
        ("dev.mem", Path::new("/sys/class/mem/mem").exists() || Path::new("/sys/class/mem/port").exists()),
        // CONFIG_MODULES.
        ("sys.module", Path::new("/proc/modules").exists()),
        // CONFIG_KEXEC.
        ("sys.kexec", Path::new("/proc/sys/kernel/kexec_load_disabled").exists()),
        // Root without CAP_SYS_RESOURCE in its bounding set (a container).
        ("res.rlimit", cap_bnd & (1 << 24) != 0),
    ]);
    oracle.extend(util::LISTENER_ROUTES.map(|id| (id, former_listener_connects)));
    oracle
}

#[test]
fn control_escapes_everything_this_machine_allows() {
    if !util::root() {
        return;
    }
    let dir = TempDir::new("control");
    let bus = Bus::start(&dir);
    let run = util::run_id("control");
    util::in_netns(|| {
        let oracle = machine_oracle();
        let canary = Canary::start(&dir);
        let mut args = util::probe_args(&dir, &run);
        args.extend(["--keep-markers".into(), "--dbus-socket".into(), bus.socket.display().to_string()]);
        // Handed over as systemd hands them over, so the handover routes
        // have a listener, a client and a datagram socket to turn.
        let sockets = util::HandedOver::new();
        let mut cmd = Command::new(&args[0]);
        cmd.args(&args[1..]);
        sockets.pass_to(&mut cmd);
        let got = util::verdicts(&mut cmd);

        assert_eq!(got.len(), ATTEMPTS.len(), "one verdict per catalogue row");
        let want: BTreeMap<&str, Expect> = ATTEMPTS
            .iter()
            .map(|a| {
                let escapes = oracle.get(a.id).copied().unwrap_or(true);
                (a.id, (if escapes { Escaped } else { Unsupported }, None))
            })
            .collect();
        util::assert_expected(&got, &want);
        // What the kernel refuses to root is named as its policy.
        let refused: Vec<&str> = util::LISTENER_ROUTES.into_iter().filter(|id| !oracle[id]).collect();
        util::assert_kernel_policy(&got, &refused);

        // Confirmed from outside: the canary saw each of these escapes, and
        // the host's directories hold the markers.
        let report = canary.report(&run);
        for id in SEEN_BY_CANARY.iter().filter(|id| oracle.get(**id).copied().unwrap_or(true)) {
            let runs = report.seen.get(*id).cloned().unwrap_or_default();
            assert!(runs.contains(&run), "the canary did not see {id} from run {run}: {report:#?}");
        }
        for id in MARKERS {
            let found = report.markers.iter().find(|m| m.run_id == run && m.attempt == *id);
            let m = found.unwrap_or_else(|| panic!("no marker for {id} of run {run}: {:#?}", report.markers));
            assert!(m.removed && !m.path.exists(), "canary-report --clean-markers left {}", m.path.display());
        }
    });
}

#[test]
fn list_prints_the_whole_catalogue() {
    let out = util::run_ok(Command::new(util::probe()).args(["list", "--json"]));
    let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("JSON")["id"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    let want: Vec<String> = ATTEMPTS.iter().map(|a| a.id.to_owned()).collect();
    assert_eq!(ids, want);
}

/// Where the documents state the catalogue's size, `{n}` for the number of
/// attempts and `{g}` for the goals: a route added or removed fails here,
/// naming every sentence to update (the number is typed in prose, so a
/// test keeps each place true).
const SIZE_IN_THE_DOCS: [(&str, &str); 15] = [
    ("README.md", "it tries {n} routes to {g} goals"),
    ("vm/README.md", "{n} attempts x 6 units"),
    ("units/README.md", "tries {n} routes to {g} goals"),
    ("units/lab/README.md", "the escape probe ({n} attempts at {g} goals)"),
    ("units/lab/README.md", "There are {n}; each has a name"),
    ("units/lab/README.md", "and more ({g} in all)"),
    ("units/lab/README.md", "of the {n}\nattempts escape; the other"),
    ("units/lab/README.md", "0 of {n} attempts escape."),
    ("units/lab/README.md", "and the {n} attempts in the unit and in the control took"),
    ("units/lab/README.de.md", "({n} Versuche, {g} Ziele)"),
    ("units/lab/README.de.md", "Es gibt {n}, jeder mit einem Namen"),
    ("units/lab/README.de.md", "Keiner der {n} Versuche gelingt."),
    ("units/lab/README.de.md", "die {n} Versuche in der Unit und im Kontrolllauf"),
    ("units/lab/README.de.md", "weitere\n  ({g} insgesamt)"),
    ("units/lab/README.de.md", "76 der {n}\nVersuche gelingen"),
];

#[test]
fn the_documents_state_the_catalogues_size() {
    let goals = sandkasten_probe::catalogue::Goal::ALL.len();
    let mut stale = Vec::new();
    for (file, phrase) in SIZE_IN_THE_DOCS {
        let text = std::fs::read_to_string(util::repo_file(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let phrase = phrase.replace("{n}", &ATTEMPTS.len().to_string()).replace("{g}", &goals.to_string());
        if !text.contains(&phrase) {
            stale.push(format!("{file}: {phrase:?}"));
        }
    }
    assert!(stale.is_empty(), "say the catalogue's size in these places:\n{}", stale.join("\n"));
}

#[test]
fn the_readme_names_every_route_under_its_goal() {
    let readme = std::fs::read_to_string(util::repo_file("services/probe/README.md")).unwrap();
    for a in ATTEMPTS {
        let row = readme
            .lines()
            .find(|l| l.starts_with(&format!("| `{}`", a.goal.id())))
            .unwrap_or_else(|| panic!("README.md has no row for goal {}", a.goal.id()));
        assert!(row.contains(&format!("`{}`", a.id)), "README.md lists {} not under {}", a.id, a.goal.id());
    }
}

#[test]
fn without_a_canary_outside_attempts_are_unsupported_not_passed() {
    if !util::root() {
        return;
    }
    let got = util::verdicts(Command::new(util::probe()).env_remove("SANDKASTEN_CANARY").args([
        "--json",
        "--only",
        "net.tcp-loopback",
        "fs.tmp-shared",
        "ipc.sysv",
        "priv.signal",
    ]));
    for v in got.values() {
        assert_eq!(v.verdict, Unsupported, "{}: {}", v.id, v.detail);
    }
    assert_eq!(got.len(), 4);
}

/// `run-one`, kept for debugging by hand, makes one attempt in its own
/// process and prints the attempt's outcome (not a verdict) as JSON.
#[test]
fn run_one_makes_one_attempt_by_hand() {
    if !util::root() {
        return;
    }
    let out = util::run_ok(
        Command::new(util::probe()).env_remove("SANDKASTEN_CANARY").args(["run-one", "priv.capabilities"]),
    );
    let outcome: Outcome = serde_json::from_slice(&out.stdout).expect("run-one prints one outcome");
    assert!(matches!(outcome, Outcome::Escaped { .. }), "{outcome:?}");
}
