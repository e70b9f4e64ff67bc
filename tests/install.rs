//! scripts/install and scripts/uninstall, staged with DESTDIR as a packager
//! would run them: what lands where, the rewritten paths, and an uninstall
//! that removes exactly what was installed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("scripts").join(name)
}

fn run(name: &str, env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(script(name));
    cmd.env_remove("DESTDIR").env_remove("PREFIX");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "status {:?}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn files_below(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    let mut dirs = vec![root.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    files.sort();
    files
}

#[test]
fn staged_install_honours_prefix_and_uninstall_removes_exactly_it() {
    let dest = tempfile::tempdir().unwrap();
    // Something of someone else's under the same prefix must survive.
    let other = dest.path().join("usr/local/share/other/keep.txt");
    std::fs::create_dir_all(other.parent().unwrap()).unwrap();
    std::fs::write(&other, "not ours").unwrap();

    let env = [("DESTDIR", dest.path()), ("PREFIX", Path::new("/usr/local"))];
    let output = run("install", &env);
    assert!(output.status.success(), "{}", text(&output));
    let files = files_below(dest.path());
    for expected in [
        "usr/local/libexec/sandkasten/sandkasten-http",
        "usr/local/libexec/sandkasten/sandkasten-gopher",
        "usr/local/libexec/sandkasten/sandkasten-echo",
        "usr/local/lib/systemd/system/sandkasten-http.socket",
        "usr/local/lib/systemd/system/sandkasten-echo-inetd@.service",
        "usr/local/share/sandkasten/www/index.html",
        "usr/local/share/sandkasten/gopher/gophermap",
        "usr/local/share/sandkasten/install-manifest",
    ] {
        assert!(files.iter().any(|f| f == expected), "{expected} not installed; got {files:#?}");
    }
    let unit =
        std::fs::read_to_string(dest.path().join("usr/local/lib/systemd/system/sandkasten-http.service"))
            .unwrap();
    assert!(
        unit.contains(
            "ExecStart=/usr/local/libexec/sandkasten/sandkasten-http --root /usr/local/share/sandkasten/www"
        ),
        "ExecStart not rewritten for PREFIX:\n{unit}"
    );

    let again = run("install", &env);
    assert!(!again.status.success() && text(&again).contains("already installed"), "{}", text(&again));

    let output = run("uninstall", &env);
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(
        files_below(dest.path()),
        ["usr/local/share/other/keep.txt"],
        "uninstall left or took too much"
    );
    assert!(!dest.path().join("usr/local/libexec/sandkasten").exists(), "empty directories left behind");
}

#[test]
fn uninstall_without_an_install_says_so() {
    let dest = tempfile::tempdir().unwrap();
    let output = run("uninstall", &[("DESTDIR", dest.path())]);
    assert!(!output.status.success() && text(&output).contains("nothing to uninstall"), "{}", text(&output));
}

#[test]
fn live_install_refuses_without_root_or_without_systemd() {
    // As nobody: refused for want of root, before anything is built. From a
    // copy that nobody can read, wherever the checkout lives (/root is 0700).
    let copy = tempfile::tempdir().unwrap();
    let scripts = copy.path().join("scripts");
    std::fs::create_dir(&scripts).unwrap();
    for name in ["install", "lib.sh"] {
        std::fs::copy(script(name), scripts.join(name)).unwrap();
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(copy.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let output = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(scripts.join("install"))
        .env_remove("DESTDIR")
        .output()
        .expect("setpriv (util-linux) is needed");
    assert!(!output.status.success() && text(&output).contains("run as root"), "{}", text(&output));

    if rustix::process::getuid().is_root() && !Path::new("/run/systemd/system").exists() {
        // Root, but systemd is not PID 1: nothing could run the units.
        let output = run("install", &[]);
        assert!(
            !output.status.success() && text(&output).contains("systemd is not PID 1"),
            "{}",
            text(&output)
        );
    }
}
