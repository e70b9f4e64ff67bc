//! `sandkasten-echo`: RFC 862 echo on every socket systemd hands us.

use std::process::ExitCode;

use clap::Parser;
use sandkasten_runtime::{activation, logging, RuntimeArgs};

/// Echo (RFC 862) over TCP, UDP, and inetd-style single connections.
///
/// Run it from a systemd .socket unit: ListenStream= and ListenDatagram=
/// sockets with Accept=no, or one connection per instance with Accept=yes.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Echo stdin to stdout and exit at end of input (Accept=yes with
    /// StandardInput=socket, or classic inetd).
    #[arg(long, env = "SANDKASTEN_INETD")]
    inetd: bool,

    #[command(flatten)]
    runtime: RuntimeArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let sockets = if args.inetd {
        Vec::new()
    } else {
        match activation::take(&args.runtime.listen) {
            Ok(sockets) => sockets,
            Err(err) => {
                eprintln!("sandkasten-echo: error: {err}");
                return ExitCode::from(2);
            }
        }
    };
    logging::init();
    let inetd = args.inetd;
    sandkasten_runtime::run("sandkasten-echo", &args.runtime, sockets, move |ctx, sockets| async move {
        if inetd {
            sandkasten_echo::serve_stdio(&ctx).await
        } else {
            sandkasten_echo::serve(ctx, sockets).await
        }
    })
}
