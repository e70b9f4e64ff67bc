//! The host side of a plan: which passes a matrix or an ablation runs, and
//! the units each runs in (generated from the reference units in `units/`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::contract::{paths, Pass, Plan};
use crate::error::{Error, IoContext};
use crate::variant::{self, Directive, Generated, Probe, UnitFile};

/// The probe as the generated units run it: JSON verdicts, the canary's
/// state, markers left for the canary to find, limits just above every
/// reference unit's (TasksMax= 32, MemoryMax= 128M) so that the controls
/// show the escape without a minute of fork bomb.
pub fn probe() -> Probe {
    Probe {
        command: format!(
            "{} --json --canary {} --keep-markers --content-dir {} --fork-limit 100 --memory-mib 192",
            paths::PROBE,
            paths::CANARY_STATE,
            paths::CONTENT_DIR
        ),
        // fork (clone) is allowed already; the runner waits for, kills and
        // reads each attempt's child (kill pipe2 setpgid waitid), and the
        // attempts' own helpers wait for theirs, point their stdio at
        // /dev/null and list directories (wait4 dup2 getdents64). Without
        // dup2, code.file-exec would stop at it and pass for the wrong
        // reason.
        infra_calls: "kill pipe2 setpgid waitid wait4 dup2 getdents64".to_owned(),
    }
}

/// A reference service of `units/` and its socket.
#[derive(Debug, Clone)]
pub struct Reference {
    /// `sandkasten-http.service`, `sandkasten-echo-inetd@.service`.
    pub name: String,
    /// The service file.
    pub service: UnitFile,
    /// Its socket's name and file.
    pub socket: Option<(String, UnitFile)>,
}

impl Reference {
    /// The short name passes and tables use: `http`, `echo-inetd`.
    pub fn short(&self) -> String {
        short_name(&self.name)
    }

    /// The service's name and its socket's, when it has one: what starts
    /// it on its port.
    pub fn unit_names(&self) -> Vec<String> {
        std::iter::once(self.name.clone()).chain(self.socket.as_ref().map(|(name, _)| name.clone())).collect()
    }

    /// Whether instances are started per connection (`Accept=yes`).
    pub fn template(&self) -> bool {
        self.name.ends_with("@.service")
    }

    /// The directives an ablation can remove.
    pub fn directives(&self) -> Vec<Directive> {
        variant::directives(&self.service, self.socket.as_ref().map(|(_, s)| s))
    }

    /// The directives whose labels are in `labels`, in the unit's order.
    pub fn directives_labelled(&self, labels: &[String]) -> Vec<Directive> {
        self.directives().into_iter().filter(|d| labels.contains(&d.label)).collect()
    }
}

/// `sandkasten-echo-inetd@.service` → `echo-inetd`.
pub fn short_name(unit: &str) -> String {
    unit.trim_start_matches("sandkasten-").trim_end_matches(".service").trim_end_matches('@').to_owned()
}

/// The reference services the matrix runs, in this order.
pub use crate::contract::reference::SERVICES as REFERENCE_UNITS;

/// Reads reference service `name` (and the socket it `Requires=`) from
/// `units_dir`.
pub fn load_reference(units_dir: &Path, name: &str) -> Result<Reference, Error> {
    let read = |file: &str| -> Result<UnitFile, Error> {
        let path = units_dir.join(file);
        let text = std::fs::read_to_string(&path).ctx(|| format!("cannot read {}", path.display()))?;
        UnitFile::parse(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    };
    let service = read(name)?;
    let socket_name = service
        .get("Unit", "Requires")
        .and_then(|r| r.split_whitespace().find(|u| u.ends_with(".socket")))
        .map(str::to_owned);
    let socket = match socket_name {
        Some(s) => Some((s.clone(), read(&s)?)),
        None => None,
    };
    Ok(Reference { name: name.to_owned(), service, socket })
}

/// Why a pass ran: the host reads its verdicts accordingly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// The probe in a reference unit's sandbox.
    Unit(String),
    /// No sandbox, root: must escape wherever the machine allows it.
    Control,
    /// A plain unprivileged user, nothing else: what "not root" alone stops.
    PlainUser,
    /// A reference unit with these directives removed.
    Ablation {
        /// The reference unit.
        unit: String,
        /// Labels of the removed directives (none: the baseline).
        removed: Vec<String>,
    },
}

/// A plan, the units it needs, and what each pass is for.
#[derive(Debug, Clone, Default)]
pub struct Staged {
    /// For the guest.
    pub plan: Plan,
    /// The generated units, for the payload's overlay.
    pub units: Vec<Generated>,
    /// Pass name → role.
    pub roles: BTreeMap<String, Role>,
}

/// The user the plain-user control runs as. Not `DynamicUser=yes`: that
/// implies `ProtectSystem=strict`, `ProtectHome=read-only`, `PrivateTmp=`,
/// `RemoveIPC=`, `NoNewPrivileges=` and `RestrictSUIDSGID=` (systemd.exec(5)),
/// and what those stop is the sandbox's doing, not the missing root.
pub const PLAIN_USER: &str = "nobody";

const CONTROL_SERVICE: &str = "[Unit]\nDescription=sandkasten-probe control: no sandbox at all\n\
Requires=control.socket\nAfter=control.socket\n\n[Service]\nType=exec\nExecStart=/bin/false\n\
# No limits: systemd's default TasksMax= would stop the fork bomb, and a\n\
# control that is stopped proves nothing.\nTasksMax=infinity\nMemoryMax=infinity\n";
const CONTROL_SOCKET: &str = "[Socket]\nListenStream=127.0.0.1:1\nListenDatagram=127.0.0.1:1\n";

impl Staged {
    /// Adds a pass in a unit generated from `reference` (its service file's
    /// name, socket and parsed text) with `removed` taken out.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn add(
        &mut self,
        name: String,
        role: Role,
        reference: &Reference,
        port: u16,
        removed: &[&Directive],
        attempts: &[String],
        extra: &[(&str, &str)],
    ) {
        let template = reference.template();
        let socket = reference.socket.as_ref().map(|(n, s)| (n.as_str(), s));
        let mut extra = extra.to_vec();
        if template {
            extra.push(("Environment", "SANDKASTEN_PROBE_SIBLINGS=2"));
        }
        let dial = template || attempts.iter().any(|a| a == "net.handover-accepted");
        let pass = Pass {
            name: name.clone(),
            template,
            port: (dial && socket.is_some()).then_some(port),
            // Two instances side by side: the sibling routes need them.
            clients: if template { 2 } else { 1 },
            attempts: attempts.to_vec(),
            deadline_s: 300,
        };
        let generated = variant::generate(&pass, socket, &reference.service, port, removed, &probe(), &extra);
        self.plan.passes.push(pass);
        self.units.push(generated);
        self.roles.insert(name, role);
    }

    /// A pass in the control unit: socket-activated like the reference
    /// units, with no sandbox at all, and `extra` lines (the plain user's).
    fn control(&mut self, name: &str, role: Role, port: u16, attempts: &[String], extra: &[(&str, &str)]) {
        let control = Reference {
            name: "control.service".to_owned(),
            service: UnitFile::parse(CONTROL_SERVICE).expect("valid"),
            socket: Some(("control.socket".to_owned(), UnitFile::parse(CONTROL_SOCKET).expect("valid"))),
        };
        self.add(name.to_owned(), role, &control, port, &[], attempts, extra);
    }
}

/// The matrix: every reference unit, the control and the plain user, each
/// making every attempt.
pub fn matrix(references: &[Reference], attempts: &[String]) -> Staged {
    let mut staged = Staged::default();
    staged.plan.functional = true;
    staged.plan.parallel = 3;
    staged.control("control", Role::Control, 7901, attempts, &[]);
    staged.control("plain", Role::PlainUser, 7902, attempts, &[("User", PLAIN_USER), ("Group", "nogroup")]);
    for (i, reference) in references.iter().enumerate() {
        let name = reference.short();
        staged.add(
            name.clone(),
            Role::Unit(reference.name.clone()),
            reference,
            20000 + i as u16,
            &[],
            attempts,
            &[],
        );
    }
    staged
}

/// An audit: the root control, then each unit (with its `extra` lines)
/// as written, every attempt in each.
pub fn audit(units: &[(Reference, Vec<(&str, String)>)], attempts: &[String]) -> Staged {
    let mut staged = Staged::default();
    staged.plan.parallel = 3;
    staged.control("control", Role::Control, 7901, attempts, &[]);
    for (i, (reference, extra)) in units.iter().enumerate() {
        let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
        staged.add(
            format!("audit-{i}"),
            Role::Unit(reference.name.clone()),
            reference,
            23000 + i as u16,
            &[],
            attempts,
            &extra,
        );
    }
    staged
}

/// An ablation of `reference`: the unit as it is (the baseline), then once
/// per set in `removals` with that set of its directives removed; and the
/// root control beside them, which shows what can escape at all.
/// Later rounds (`first_round` false) leave out the control and the
/// baseline, which the first measured.
pub fn ablation(
    reference: &Reference,
    removals: &[Vec<Directive>],
    attempts: &[String],
    first_round: bool,
) -> Staged {
    let mut staged = Staged::default();
    staged.plan.parallel = 3;
    let unit = reference.name.clone();
    if first_round {
        // The root control only: the plain user is the matrix's business.
        staged.control("control", Role::Control, 7901, attempts, &[]);
        staged.add(
            "abl-0".into(),
            Role::Ablation { unit: unit.clone(), removed: vec![] },
            reference,
            21000,
            &[],
            attempts,
            &[],
        );
    }
    for (i, set) in removals.iter().enumerate() {
        let removed: Vec<&Directive> = set.iter().collect();
        let labels = set.iter().map(|d| d.label.clone()).collect();
        staged.add(
            format!("abl-{}", i + 1),
            Role::Ablation { unit: unit.clone(), removed: labels },
            reference,
            21001 + i as u16,
            &removed,
            attempts,
            &[],
        );
    }
    staged
}

/// Part `index` of `count` (1-based), written `I/N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Shard {
    /// Which part, from 1.
    pub index: u32,
    /// How many parts.
    pub count: u32,
}

impl Shard {
    /// The items of this part: every `count`-th, from the `index`-th on.
    pub fn take<T: Clone>(&self, items: &[T]) -> Vec<T> {
        items.iter().skip(self.index as usize - 1).step_by(self.count as usize).cloned().collect()
    }

    /// Whether this part runs what is done once per run (functional checks).
    pub fn is_first(&self) -> bool {
        self.index == 1
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> Result<Shard, String> {
        let usage = || format!("'{text}' is not a shard: write I/N, e.g. 1/2 (part I of N, 1 <= I <= N)");
        let (index, count) = text.split_once('/').ok_or_else(usage)?;
        let (index, count): (u32, u32) =
            (index.trim().parse().map_err(|_| usage())?, count.trim().parse().map_err(|_| usage())?);
        if index == 0 || index > count {
            return Err(usage());
        }
        Ok(Shard { index, count })
    }
}

impl TryFrom<String> for Shard {
    type Error = String;
    fn try_from(text: String) -> Result<Shard, String> {
        text.parse()
    }
}

impl From<Shard> for String {
    fn from(shard: Shard) -> String {
        shard.to_string()
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_is_written_i_of_n() {
        assert_eq!("2/3".parse::<Shard>(), Ok(Shard { index: 2, count: 3 }));
        assert_eq!(Shard { index: 1, count: 2 }.to_string(), "1/2");
        for bad in ["0/2", "3/2", "2", "a/b", "1/0", ""] {
            let err = bad.parse::<Shard>().unwrap_err();
            assert!(err.contains("write I/N"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_parts_take_every_item_once() {
        let items: Vec<u32> = (0..11).collect();
        let mut all: Vec<u32> = (1..=3).flat_map(|index| Shard { index, count: 3 }.take(&items)).collect();
        all.sort();
        assert_eq!(all, items);
        assert_eq!(Shard { index: 2, count: 3 }.take(&items), vec![1, 4, 7, 10]);
    }
}
