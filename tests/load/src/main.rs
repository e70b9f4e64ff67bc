//! `sandkasten-load`: the load generator `scripts/bench` runs for its gopher
//! and echo rows (and, as a library, `sandkasten-vm bench`'s HTTP client).
//! Prints one JSON object, the same `bench.py client …` printed.

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use sandkasten_load::{EchoTcp, EchoUdp, Gopher, Http};

/// Load an HTTP, gopher or echo server on 127.0.0.1 for a while and print what it
/// managed, as JSON.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    kind: Kind,

    /// Tokio runtime to run the clients on.
    #[arg(long, global = true, value_enum, default_value_t = Flavor::CurrentThread)]
    runtime: Flavor,
}

#[derive(Debug, Subcommand)]
enum Kind {
    /// HTTP/1.1 GETs, kept alive or a new connection each, every answer
    /// read by its Content-Length.
    Http(Http),
    /// Gopher exchanges: connect, send the selector, read to EOF, close.
    Gopher(Gopher),
    /// TCP echo: stream bytes through each connection and count them back.
    EchoTcp(EchoTcp),
    /// UDP echo: keep datagrams in flight and count them back.
    EchoUdp(EchoUdp),
}

/// Which tokio runtime the clients run on.
///
/// The default is one thread. Measured against the benchmark's servers on
/// its 2-core machine (loopback, release builds, both runtimes alternated
/// with the same servers; two runs of 3 rounds of 3 s, on a busy machine),
/// the multi-thread runtime never used clearly less client CPU for the work
/// done, and often more: per UDP datagram 5.9–7.1 µs against 4.0–4.8 µs,
/// per echoed GiB the same to 1.5×, per gopher request the same (41–54 µs
/// against sandkasten-gopher); and the servers' rates were not consistently
/// higher with it (from run to run it led or trailed by up to a third, the
/// noise of that machine), as its second worker only competes with the
/// server for the two cores and adds cross-thread wake-ups.
/// `--runtime multi-thread` is kept to measure that again.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Flavor {
    /// Everything on the main thread.
    CurrentThread,
    /// A worker thread per core.
    MultiThread,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = match cli.runtime {
        Flavor::CurrentThread => tokio::runtime::Builder::new_current_thread().enable_all().build(),
        Flavor::MultiThread => tokio::runtime::Builder::new_multi_thread().enable_all().build(),
    }
    .context("cannot start the tokio runtime")?;
    let json = runtime.block_on(async {
        anyhow::Ok(match &cli.kind {
            Kind::Http(args) => serde_json::to_string(&sandkasten_load::http(args).await.context("http")?),
            Kind::Gopher(args) => {
                serde_json::to_string(&sandkasten_load::gopher(args).await.context("gopher")?)
            }
            Kind::EchoTcp(args) => {
                serde_json::to_string(&sandkasten_load::echo_tcp(args).await.context("echo-tcp")?)
            }
            Kind::EchoUdp(args) => {
                serde_json::to_string(&sandkasten_load::echo_udp(args).await.context("echo-udp")?)
            }
        }?)
    })?;
    println!("{json}");
    Ok(())
}
