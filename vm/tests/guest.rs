use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use sandkasten_vm::{AccelRequest, Config, Error, Guest, Release, EXIT_HARNESS_FAILURE};

use crate::util::{host_mode_payload, one_guest_at_a_time, sandkasten_vm};

#[test]
fn exec_runs_a_command_under_systemd() {
    let Some(_guest) = one_guest_at_a_time() else { return };
    let out = sandkasten_vm(&["exec", "--accel", "tcg", "--", "sh", "-c", "systemctl --version; echo hi"]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("systemd 252 ("), "{stdout}");
    assert!(stdout.contains("-BPF_FRAMEWORK"), "bookworm's systemd lacks the BPF framework: {stdout}");
    assert!(stdout.ends_with("\nhi\n"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("using TCG"), "the accelerator is announced: {stderr}");
}

#[test]
fn exec_returns_the_guest_status() {
    let Some(_guest) = one_guest_at_a_time() else { return };
    let out = sandkasten_vm(&["exec", "--accel", "tcg", "--", "sh", "-c", "echo oops >&2; exit 7"]);
    assert_eq!(out.status.code(), Some(7));
    assert!(String::from_utf8_lossy(&out.stderr).contains("oops"));
}

/// The library path the matrix will use: a payload with a `run` script whose
/// stdout is the result, an `overlay/` that lands on `/` before systemd starts
/// (so a unit in it is known without daemon-reload), a non-zero status, and
/// the timings.
#[test]
fn payload_run_script_overlay_result_and_status() {
    let Some(_guest) = one_guest_at_a_time() else { return };
    let payload = tempfile::tempdir().unwrap();
    let unit_dir = payload.path().join("overlay/etc/systemd/system");
    std::fs::create_dir_all(&unit_dir).unwrap();
    std::fs::write(
        unit_dir.join("sandkasten-hello.service"),
        "[Service]\nType=oneshot\nExecStart=/bin/sh -c 'echo hello-from-unit >/run/hello'\n",
    )
    .unwrap();
    let run = payload.path().join("run");
    let script = r#"#!/bin/sh
systemctl start sandkasten-hello.service || exit 1
printf '{"pwd":"%s","user":"%s","unit":"%s"}' "$PWD" "$(id -un)" "$(cat /run/hello)"
exit 5
"#;
    std::fs::write(&run, script).unwrap();
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755)).unwrap();

    let mut config = Config::new(Release::Bookworm);
    config.accel = AccelRequest::Tcg;
    config.payload_dir = Some(payload.path().to_path_buf());
    let result = Guest::boot(&config).expect("guest run");
    assert_eq!(result.status, 5, "stderr: {}", String::from_utf8_lossy(&result.stderr));
    assert_eq!(result.result(), br#"{"pwd":"/payload","user":"root","unit":"hello-from-unit"}"#);
    assert!(result.console_log.is_file());
    let t = result.timings;
    assert!(t.to_script_start > Duration::ZERO && t.qemu >= t.to_script_start + t.script, "{t:?}");
    eprintln!("timings: {t:?}");
}

#[test]
fn a_guest_that_never_finishes_times_out_with_the_console_tail() {
    let Some(_guest) = one_guest_at_a_time() else { return };
    let out = sandkasten_vm(&[
        "exec",
        "--accel",
        "tcg",
        "--timeout",
        "40",
        "--",
        "sh",
        "-c",
        "echo still-sleeping >/dev/console; sleep 1000",
    ]);
    assert_eq!(out.status.code(), Some(i32::from(EXIT_HARNESS_FAILURE)));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("did not finish within 40 s under tcg"), "{stderr}");
    assert!(stderr.contains("last console lines"), "{stderr}");
    assert!(stderr.contains("still-sleeping"), "the console tail is in the error: {stderr}");
}

#[test]
fn library_timeout_is_a_typed_error() {
    let Some(_guest) = one_guest_at_a_time() else { return };
    let mut config = Config::new(Release::Bookworm);
    config.accel = AccelRequest::Tcg;
    config.command = Some(vec!["sleep".into(), "1000".into()]);
    // Too short to even boot: the error still names the console log.
    config.timeout = Some(Duration::from_secs(2));
    match Guest::boot(&config) {
        Err(Error::Timeout { after, console_log, .. }) => {
            assert_eq!(after, Duration::from_secs(2));
            assert!(console_log.is_file());
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
}

/// `sandkasten-vm exec --accel tcg --unit UNIT -- COMMAND...`
fn exec_in_unit(unit: &str, command: &[&str]) -> std::process::Output {
    let mut args = vec!["exec", "--accel", "tcg", "--unit", unit, "--"];
    args.extend_from_slice(command);
    sandkasten_vm(&args)
}

/// `exec --unit`: a command runs inside exactly the unit's sandbox, here the
/// reference echo unit: a dynamic user, no /etc/shadow, the command's own
/// exit status back on the host. The unit lets nothing but its server run
/// (`ExecPaths=`); exec adds the command's own program, so a static one
/// (busybox) runs and a dynamic one cannot load its libraries.
#[test]
fn exec_unit_runs_the_command_inside_that_units_sandbox() {
    let Some(_guest) = one_guest_at_a_time() else { return };
    let unit = concat!(env!("CARGO_MANIFEST_DIR"), "/../units/sandkasten-echo.service");
    let out = exec_in_unit(unit, &["/bin/busybox", "id", "-u"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stderr.contains("added to ExecPaths="), "exec must say what it added: {stderr}");
    let uid: u32 =
        stdout.lines().find_map(|l| l.trim().parse().ok()).unwrap_or_else(|| panic!("no uid in {stdout}"));
    assert!((61184..=65519).contains(&uid), "not a dynamic user: uid {uid}");

    let out = exec_in_unit(unit, &["/bin/busybox", "cat", "/etc/shadow"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "reading /etc/shadow must fail in the sandbox: {stdout}");
    assert!(stderr.contains("Permission denied"), "the command's stderr comes back as stderr: {stderr}");

    // A dynamically linked program gets its own file, not its libraries.
    let out = exec_in_unit(unit, &["/usr/bin/id", "-u"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_ne!(out.status.code(), Some(0), "/usr/bin/id ran with its libraries noexec: {stdout}");
}

/// The servers' lockdown for any program: in the unit most people write
/// (lab step 0, no hardening), the probe writes code through
/// /proc/self/mem and through a shared page's second mapping; started
/// through the packaged `sandkasten-lockdown`, the same probe in the same
/// unit cannot (one boot, both runs).
#[test]
fn the_lockdown_wrapper_closes_the_two_routes_systemd_has_no_directive_for() {
    let Some(_guest) = one_guest_at_a_time() else { return };
    let unit = concat!(env!("CARGO_MANIFEST_DIR"), "/../units/lab/sandkasten-lab0.service");
    let routes = "code.proc-mem-write code.proc-mem-pwrite code.shared-alias-fork code.shared-alias-mremap";
    let script = format!(
        "p=/usr/libexec/sandkasten/sandkasten-probe; $p --json --only {routes}; echo ---; \
         /usr/libexec/sandkasten/sandkasten-lockdown $p --json --only {routes}"
    );
    let out = exec_in_unit(unit, &["/bin/sh", "-c", &script]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let (bare, locked) = stdout.split_once("---\n").unwrap_or_else(|| panic!("two runs: {stdout}"));
    let verdicts = |text: &str| -> Vec<(String, String)> {
        text.lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (v["id"].as_str().unwrap().to_owned(), v["verdict"].as_str().unwrap().to_owned())
            })
            .collect()
    };
    let (bare, locked) = (verdicts(bare), verdicts(locked));
    assert_eq!(bare.len(), 4, "{stdout}");
    assert!(bare.iter().all(|(_, v)| v == "escaped"), "the control: {bare:?}");
    assert_eq!(locked.len(), 4, "{stdout}");
    assert!(locked.iter().all(|(_, v)| v == "blocked"), "under sandkasten-lockdown: {locked:?}");
}

/// `audit --check`: the real program must serve in the unit as written
/// before the probe takes its place. Lab step 4 serves (a GET through its
/// socket answers 200); the Python unit of the lab's examples never runs
/// in the stock guest (no python3), and the audit says so in capitals and
/// fails instead of reporting escapes as if all were well; given
/// `--package python3`, it serves.
#[test]
fn audit_check_fails_loudly_when_the_sandbox_breaks_the_program() {
    let Some(_guest) = one_guest_at_a_time() else { return };
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let http_get = "exec 3<>/dev/tcp/127.0.0.1/$PORT && printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3 \
                    && head -n 1 <&3 | grep ' 200 '";
    let lab4 = format!("{root}/units/lab/sandkasten-lab4.service");
    let out = sandkasten_vm(&["audit", &lab4, "--accel", "tcg", "--check", http_get]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("the program serves in this sandbox"), "{stdout}");
    assert!(
        stdout.contains("HTTP/1.0 200") || stdout.contains(" 200 "),
        "the check's answer is shown: {stdout}"
    );
    assert_eq!(out.status.code(), Some(0), "lab step 4 serves and holds: {stdout}");

    let python = format!("{root}/units/lab/examples/python-http-dynamic.service");
    let out =
        sandkasten_vm(&["audit", &python, "--accel", "tcg", "--check", "exec 3<>/dev/tcp/127.0.0.1/8000"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("THE PROGRAM DOES NOT SERVE IN THIS SANDBOX"), "{stdout}");
    assert!(stdout.contains("203"), "systemd's reason (203/EXEC: no python3) is shown: {stdout}");
    assert!(stderr.contains("THE PROGRAM DOES NOT SERVE"), "{stderr}");

    // With the interpreter in the guest (`--package python3`: an image of
    // its own, built once) the same unit serves the lab's site, and the
    // audit measures the sandbox of a program that runs.
    let www = format!("{root}/units/lab/examples/www:/srv/www");
    let get_8000 = http_get.replace("$PORT", "8000");
    let out = sandkasten_vm(&[
        "audit",
        &python,
        "--accel",
        "tcg",
        "--package",
        "python3",
        "--files",
        &www,
        "--check",
        &get_8000,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("the program serves in this sandbox"), "{stdout}");
    assert!(!stdout.contains("THE AUDIT IS INCOMPLETE"), "{stdout}");
}

/// `exec --unit` passes back what the command wrote, every time, even for a
/// command that exits at once: the output no longer goes through the
/// journal (lab step 1 and `/usr/bin/id` printed nothing in 3 runs of 3).
#[test]
fn exec_unit_passes_back_what_a_short_lived_command_wrote() {
    let Some(_guest) = one_guest_at_a_time() else { return };
    let unit = concat!(env!("CARGO_MANIFEST_DIR"), "/../units/lab/sandkasten-lab1.service");
    for _ in 0..2 {
        let out = exec_in_unit(unit, &["/usr/bin/id"]);
        assert_eq!(out.status.code(), Some(0));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.starts_with("uid=0(root)"), "lab step 1 runs as root: {stdout:?}");
    }
    let out = exec_in_unit(unit, &["/bin/sh", "-c", "echo to-stderr >&2"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("to-stderr"), "stderr is passed back too");
}

/// Host mode, on a host whose PID 1 is systemd: the guest. It measures with
/// runtime units and the same code the VM report runs through its own
/// generated units at boot, and must come to the same table: every
/// directive's status as in units/enforcement/ (`differences`).
#[test]
fn host_mode_in_the_guest_prints_the_vm_reports_table() {
    use sandkasten_vm::enforcement::{differences, EnforcementReport};
    use sandkasten_vm::payload;

    let Some(_guest) = one_guest_at_a_time() else { return };
    let workspace = payload::workspace_root();
    let dir = host_mode_payload(
        "#!/bin/sh\n\
        /usr/libexec/sandkasten/sandkasten-vm enforce --host --units /payload/units --json /tmp/host.json >&2 \
        && cat /tmp/host.json\n",
    );

    let mut config = Config::new(Release::Bookworm);
    config.accel = AccelRequest::Tcg;
    config.payload_dir = Some(dir.path().to_path_buf());
    config.timeout = Some(Duration::from_secs(900));
    let run = Guest::boot(&config).expect("guest run");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status, 0, "host mode failed in the guest:\n{stderr}");
    let measured: Vec<EnforcementReport> = serde_json::from_slice(run.result())
        .unwrap_or_else(|e| panic!("no report ({e}): {}\n{stderr}", String::from_utf8_lossy(run.result())));
    let committed: EnforcementReport = serde_json::from_str(
        &std::fs::read_to_string(workspace.join("units/enforcement/bookworm.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(measured.len(), 1);
    assert!(measured[0].failures.is_empty(), "{:?}", measured[0].failures);
    let diff = differences(&committed, &measured[0]);
    assert!(diff.is_empty(), "host mode and the VM report disagree:\n{}", diff.join("\n"));
}

/// Outside systemd (this CI machine: PID 1 is not systemd), host mode
/// refuses with a message that says why and what to do instead.
#[test]
fn host_mode_refuses_where_pid_1_is_not_systemd() {
    if std::path::Path::new("/run/systemd/system").is_dir() {
        eprintln!("skipped: this machine's PID 1 is systemd");
        return;
    }
    let unit = concat!(env!("CARGO_MANIFEST_DIR"), "/../units/lab/examples/python-http.service");
    for (command, args) in
        [("enforce", vec!["--host"]), ("audit", vec![unit, "--host"]), ("harden", vec![unit, "--host"])]
    {
        let mut all = vec![command];
        all.extend(args);
        let out = sandkasten_vm(&all);
        assert_eq!(out.status.code(), Some(i32::from(EXIT_HARNESS_FAILURE)));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("PID 1 is not systemd"), "{stderr}");
        let instead = format!("sandkasten-vm {command} --release");
        assert!(stderr.contains(&instead), "it names the alternative: {stderr}");
    }
    // What only a guest can do is refused before anything runs.
    let out = sandkasten_vm(&["audit", unit, "--host", "--package", "python3"]);
    assert_eq!(out.status.code(), Some(i32::from(EXIT_HARNESS_FAILURE)));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--package installs into the guest"));
    let out = sandkasten_vm(&["harden", unit, "--host", "--release", "trixie"]);
    assert_eq!(out.status.code(), Some(2), "a usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be used with"));
}

/// vm/plan/package-lifecycle with the reference deployment it enables and
/// asks before it: the sockets and their ports.
fn package_lifecycle() -> String {
    use sandkasten_vm::contract::reference::{ECHO, ECHO_INETD, GOPHER, HTTP, SERVERS, SOCKETS};
    let plan = include_str!("../plan/package-lifecycle");
    let (shebang, body) = plan.split_once('\n').expect("a script");
    let ports: std::collections::BTreeSet<u16> =
        SERVERS.iter().flat_map(|s| [Some(s.tcp), s.udp]).flatten().collect();
    let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
    format!(
        "{shebang}\nSOCKETS='{}'\nHTTP_PORT={}\nGOPHER_PORT={}\nECHO_PORTS='{} {}'\nPORTS='{}'\n{body}",
        SOCKETS.join(" "),
        HTTP.tcp,
        GOPHER.tcp,
        ECHO.tcp,
        ECHO_INETD.tcp,
        ports.join(" ")
    )
}

/// The Debian package, the one install truth, in a real systemd: installed
/// by dpkg at boot (as in every run), enabled by an admin, serving, then
/// `apt-get purge` leaves nothing behind (vm/plan/package-lifecycle lists
/// the checks).
#[test]
fn the_package_installs_serves_and_purges_cleanly() {
    use sandkasten_vm::payload;

    let Some(_guest) = one_guest_at_a_time() else { return };
    let build = payload::build(&payload::workspace_root()).expect("release build and package");
    let dir = tempfile::tempdir().unwrap();
    payload::stage(dir.path(), &build, &package_lifecycle(), &[]).expect("payload");

    let mut config = Config::new(Release::Bookworm);
    config.accel = AccelRequest::Tcg;
    config.payload_dir = Some(dir.path().to_path_buf());
    let run = Guest::boot(&config).expect("guest run");
    let report = String::from_utf8_lossy(run.result());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status, 0, "the package's life in the guest failed:\n{report}\n{stderr}");
    for check in
        ["ok   installing enabled nothing", "ok   http: HTTP/1.1 200", "ok   no file of the package left"]
    {
        assert!(report.contains(check), "missing '{check}' in:\n{report}");
    }
}

/// The lab guide's hand attempts (units/lab/README.md), each run as printed:
/// every `sandkasten-vm exec` block followed by the output it shows. They
/// come in pairs, the step before (it gets through: status 0) and the
/// step itself (it is blocked: not 0), and each prints what the guide says
/// (digits aside: /etc/shadow's dates follow the image build).
#[test]
fn the_lab_guides_hand_attempts_print_what_it_shows() {
    let Some(_guest) = one_guest_at_a_time() else { return };
    let root = sandkasten_vm::payload::workspace_root();
    let guide = std::fs::read_to_string(root.join("units/lab/README.md")).unwrap();
    let attempts = hand_attempts(&guide);
    assert!(attempts.len() >= 8 && attempts.len() % 2 == 0, "pairs of hand attempts: {attempts:?}");
    for (i, (command, shown)) in attempts.iter().enumerate() {
        let words = shell_words(command.strip_prefix("sandkasten-vm ").unwrap());
        let args: Vec<String> = words
            .into_iter()
            .map(|w| if w.starts_with("units/") { root.join(&w).display().to_string() } else { w })
            .collect();
        let mut argv: Vec<&str> = vec!["exec", "--accel", "tcg"];
        argv.extend(args.iter().skip(1).map(String::as_str));
        let out = sandkasten_vm(&argv);
        let printed: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .chain(String::from_utf8_lossy(&out.stderr).lines())
            .filter(|l| !l.starts_with("sandkasten-vm:"))
            .map(without_digits)
            .collect();
        let status = out.status.code();
        assert!(status != Some(EXIT_HARNESS_FAILURE as i32), "`{command}`: the harness failed: {printed:?}");
        let expected: Vec<String> = shown.lines().map(without_digits).collect();
        for line in &expected {
            assert!(printed.contains(line), "`{command}` did not print {line:?}: {printed:?}");
        }
        if i % 2 == 0 {
            assert_eq!(status, Some(0), "`{command}` (the step before) should get through");
        } else {
            assert_ne!(status, Some(0), "`{command}` (the step itself) should be blocked");
        }
    }
}

/// Each one-line `sandkasten-vm exec` block of `guide` with the output
/// block after it.
fn hand_attempts(guide: &str) -> Vec<(String, String)> {
    let blocks: Vec<&str> = guide.split("```").skip(1).step_by(2).collect();
    blocks
        .windows(2)
        .filter_map(|pair| {
            let command = pair[0].strip_prefix("sh\n")?.trim();
            let output = pair[1].strip_prefix('\n')?;
            (command.starts_with("sandkasten-vm exec") && !command.contains('\n'))
                .then(|| (command.to_owned(), output.trim_end().to_owned()))
        })
        .collect()
}

/// A command line split as sh does for the guide's commands: words,
/// single-quoted strings.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                any = true;
            }
            ' ' if !quoted => {
                if any {
                    words.push(std::mem::take(&mut word));
                }
                any = false;
            }
            c => {
                word.push(c);
                any = true;
            }
        }
    }
    if any {
        words.push(word);
    }
    words
}

fn without_digits(line: &str) -> String {
    line.chars().map(|c| if c.is_ascii_digit() { '0' } else { c }).collect()
}

#[test]
fn hand_attempts_are_read_as_the_guide_writes_them() {
    let guide = "```sh\nscripts/audit x\nsandkasten-vm exec --unit a -- b\n```\n```sh\nsandkasten-vm exec --unit u -- /bin/busybox sh -c 'echo a > b'\n```\n```\nout put\n```\n";
    let attempts = hand_attempts(guide);
    assert_eq!(
        attempts,
        [("sandkasten-vm exec --unit u -- /bin/busybox sh -c 'echo a > b'".to_owned(), "out put".to_owned())]
    );
    assert_eq!(shell_words("exec -- sh -c 'echo a > b'"), ["exec", "--", "sh", "-c", "echo a > b"]);
    assert_eq!(without_digits("root::20787:0"), "root::00000:0");
}
