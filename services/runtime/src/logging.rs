//! Logging to the journal, or to stderr.
//!
//! Under systemd, stderr is usually a stream into journald and
//! `JOURNAL_STREAM` names it. Then we speak journald's native protocol
//! through `tracing-journald`, which keeps fields (`peer`, `path`, …) as
//! journal fields. That needs the journal socket `/run/systemd/journal/socket`,
//! which a sandbox may hide or forbid (`RestrictAddressFamilies=none`): then,
//! and whenever stderr is not the journal, we write plain lines to stderr.
//! Lines that go to the journal anyway carry an sd-daemon(3) `<N>` priority
//! prefix and no timestamp (the journal adds its own).

use std::fmt;
use std::io::IsTerminal;

use tracing::{Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;

/// Where log lines end up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    /// journald's native protocol.
    Journal,
    /// stderr, which systemd connects to the journal: `<N>` prefixes.
    StderrToJournal,
    /// stderr on a terminal or a file: timestamps.
    Stderr,
}

/// Installs the global tracing subscriber and returns where it logs.
///
/// The level comes from `RUST_LOG` (default `info`). Call once, early.
pub fn init() -> Sink {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let mut journal_error = None;
    let (layer, sink) = if libsystemd::logging::connected_to_journal() {
        match tracing_journald::layer() {
            Ok(journald) => (journald.boxed(), Sink::Journal),
            Err(err) => {
                journal_error = Some(err);
                (stderr_layer(Sink::StderrToJournal), Sink::StderrToJournal)
            }
        }
    } else {
        (stderr_layer(Sink::Stderr), Sink::Stderr)
    };
    tracing_subscriber::registry().with(filter).with(layer).init();
    if let Some(err) = journal_error {
        tracing::warn!(%err, "journal socket unreachable, logging to stderr");
    }
    sink
}

fn stderr_layer<S>(sink: Sink) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    if sink == Sink::StderrToJournal {
        layer.with_ansi(false).event_format(PriorityPrefix).boxed()
    } else {
        layer.with_ansi(std::io::stderr().is_terminal()).boxed()
    }
}

/// Formats `<N>message key=value…` for stderr lines that journald reads:
/// journald strips the prefix and files the line under priority N.
struct PriorityPrefix;

impl<S, N> FormatEvent<S, N> for PriorityPrefix
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> fmt::Result {
        write!(writer, "<{}>", priority(*event.metadata().level()))?;
        ctx.format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// syslog priority for a tracing level, as tracing-journald maps them.
fn priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 5,
        Level::DEBUG => 6,
        Level::TRACE => 7,
    }
}
