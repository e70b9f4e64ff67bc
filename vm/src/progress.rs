//! What a boot reports while it happens: [`Event`], for a UI or a test to
//! follow, and [`print_progress`], the stderr printer the command line uses.
//! Image builds ([`crate::image`]) and runs ([`crate::guest`]) report
//! through the same type, so it sits below both.

use std::time::Duration;

use crate::accel::Decision;
use crate::process::secs;

/// Progress of image builds and runs, for a UI or a test to follow.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// A stage of an image build or a run, with the time since it began.
    Progress {
        /// The stage ("bootstrap", "payload", ...).
        stage: String,
        /// Time since the build or run began.
        elapsed: Duration,
        /// A human line.
        detail: String,
    },
    /// The accelerator was chosen.
    Accel(Decision),
    /// qemu was started (attempt 1, or more after a crash or a hung boot).
    QemuStarted {
        /// 1 or 2.
        attempt: u32,
    },
    /// The guest script started.
    ScriptStarted {
        /// Since qemu started.
        after: Duration,
    },
    /// Bytes the guest command wrote to stdout.
    Stdout(Vec<u8>),
    /// Bytes the guest command wrote to stderr.
    Stderr(Vec<u8>),
    /// The guest script ended.
    ScriptEnded {
        /// Its exit status.
        status: i32,
        /// Since qemu started.
        after: Duration,
    },
    /// The machine failed before a result (qemu crashed, or the boot hung)
    /// and the guest is booted again.
    Retry {
        /// What failed, in one line, with the console log it left.
        reason: String,
    },
}

/// Prints progress, accelerator and retry events to stderr as
/// `sandkasten-vm: ...` lines (guest output is not printed).
pub fn print_progress(event: &Event) {
    match event {
        Event::Progress { stage, elapsed, detail } => {
            eprintln!("sandkasten-vm: [{:>6}] {stage}: {detail}", secs(*elapsed))
        }
        Event::Accel(d) => eprintln!("sandkasten-vm: {}", d.note),
        Event::Retry { reason } => eprintln!("sandkasten-vm: {reason}; booting again"),
        _ => {}
    }
}
