use sandkasten_vm::image::{parse_mirror, parse_packages, recipe_hash, GuestFile, Recipe, GUEST_FILES};
use sandkasten_vm::Release;

fn build() -> Vec<String> {
    vec!["--variant=minbase".to_owned(), "--include=systemd-sysv,dbus".to_owned()]
}

fn files() -> Vec<GuestFile> {
    vec![
        GuestFile { path: "packages.txt", contents: "systemd-sysv\ndbus\n", mode: 0o644 },
        GuestFile { path: "customize.sh", contents: "#!/bin/sh\n", mode: 0o755 },
    ]
}

#[test]
fn hash_is_stable_and_short_hex() {
    let a = recipe_hash(Release::Bookworm, &files(), &build());
    let b = recipe_hash(Release::Bookworm, &files(), &build());
    assert_eq!(a, b);
    assert_eq!(a.len(), 16);
    assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
}

#[test]
fn hash_ignores_file_order() {
    let mut reversed = files();
    reversed.reverse();
    assert_eq!(
        recipe_hash(Release::Bookworm, &files(), &build()),
        recipe_hash(Release::Bookworm, &reversed, &build())
    );
}

#[test]
fn hash_changes_with_every_input() {
    let base = recipe_hash(Release::Bookworm, &files(), &build());
    assert_ne!(base, recipe_hash(Release::Trixie, &files(), &build()), "release");

    let mut text = files();
    text[0].contents = "systemd-sysv\ndbus\nstrace\n";
    assert_ne!(base, recipe_hash(Release::Bookworm, &text, &build()), "package list");

    let mut mode = files();
    mode[1].mode = 0o644;
    assert_ne!(base, recipe_hash(Release::Bookworm, &mode, &build()), "mode");

    let mut renamed = files();
    renamed[1].path = "customise.sh";
    assert_ne!(base, recipe_hash(Release::Bookworm, &renamed, &build()), "path");

    let mut more = build();
    more.push("--aptopt=Acquire::Check-Valid-Until \"false\"".to_owned());
    assert_ne!(base, recipe_hash(Release::Bookworm, &files(), &more), "build parameters");

    // Text moved between files must not collide.
    let a =
        [GuestFile { path: "a", contents: "xy", mode: 0 }, GuestFile { path: "b", contents: "", mode: 0 }];
    let b =
        [GuestFile { path: "a", contents: "x", mode: 0 }, GuestFile { path: "b", contents: "y", mode: 0 }];
    assert_ne!(recipe_hash(Release::Bookworm, &a, &build()), recipe_hash(Release::Bookworm, &b, &build()));
}

#[test]
fn embedded_recipe_keys_the_cache_by_release() {
    let bookworm = Recipe::new(Release::Bookworm);
    assert!(bookworm.key().starts_with("bookworm-"));
    assert_eq!(bookworm.key(), format!("bookworm-{}", bookworm.hash()));
    assert_ne!(bookworm.hash(), Recipe::new(Release::Trixie).hash());
    assert!(GUEST_FILES.iter().any(|f| f.path.ends_with("sandkasten-harness.service")));
    // What the build does is in the hash: sid's moving Release file is
    // accepted there only.
    let sid = Recipe::new(Release::Sid).build();
    assert!(sid.iter().any(|a| a.contains("Check-Valid-Until")), "{sid:?}");
    assert!(!bookworm.build().iter().any(|a| a.contains("Check-Valid-Until")));
    assert!(bookworm.build().iter().any(|a| a.starts_with("--include=") && a.contains("systemd-sysv")));
}

#[test]
fn package_list_has_what_the_harness_needs() {
    let packages = Recipe::new(Release::Bookworm).packages();
    for needed in ["systemd-sysv", "dbus", "linux-image-cloud-amd64", "busybox-static", "bash"] {
        assert!(packages.iter().any(|p| p == needed), "{needed} missing from {packages:?}");
    }
    assert_eq!(parse_packages("# comment\n a  # trailing\n\nb\n"), ["a", "b"]);
}

/// `--package`: the extra packages join the include list, so each set is a
/// recipe (and an image) of its own, named by what it holds; the order and
/// repetition of the flags do not matter; a word that cannot be a Debian
/// package name is refused before anything is built.
#[test]
fn extra_packages_make_an_image_of_their_own() {
    let plain = Recipe::new(Release::Bookworm);
    let python =
        Recipe::with_packages(Release::Bookworm, &["python3".into(), "curl".into(), "python3".into()])
            .unwrap();
    assert_eq!(python.extra, ["curl", "python3"]);
    assert_ne!(python.hash(), plain.hash());
    assert_eq!(python.key(), format!("bookworm+curl+python3-{}", python.hash()));
    assert!(python.packages().ends_with(&["curl".to_owned(), "python3".to_owned()]));
    assert!(python.build().iter().any(|a| a.starts_with("--include=") && a.ends_with(",curl,python3")));
    let same = Recipe::with_packages(Release::Bookworm, &["python3".into(), "curl".into()]).unwrap();
    assert_eq!(same.key(), python.key());
    assert_eq!(Recipe::with_packages(Release::Bookworm, &[]).unwrap(), plain);
    for bad in ["Python3", "python3; rm -rf /", "-x", "p"] {
        let err = Recipe::with_packages(Release::Bookworm, &[bad.into()]).unwrap_err().to_string();
        assert!(err.contains("is not a Debian package name"), "{bad}: {err}");
    }
}

#[test]
fn mirror_from_deb822_skips_security() {
    let sources = "Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\n\
                   Components: main\n\nTypes: deb\nURIs: http://mirror.example/debian/\n\
                   Suites: bookworm bookworm-updates\nComponents: main\n";
    assert_eq!(parse_mirror(sources).as_deref(), Some("http://mirror.example/debian"));
}

#[test]
fn mirror_from_one_line_format() {
    let sources = "# deb http://old.example/debian bookworm main\n\
                   deb http://security.debian.org/debian-security bookworm-security main\n\
                   deb [signed-by=/k.gpg] http://deb.debian.org/debian bookworm main\n";
    assert_eq!(parse_mirror(sources).as_deref(), Some("http://deb.debian.org/debian"));
    assert_eq!(parse_mirror("deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main\n"), None);
}
