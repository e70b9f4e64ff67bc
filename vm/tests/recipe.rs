use sandkasten_vm::image::{parse_mirror, parse_packages, recipe_hash, GuestFile, Recipe, GUEST_FILES};
use sandkasten_vm::Release;

const CODE: &[(&str, &[u8])] = &[("src/image.rs", b"fn build() {}")];

fn files() -> Vec<GuestFile> {
    vec![
        GuestFile { path: "packages.txt", contents: "systemd-sysv\ndbus\n", mode: 0o644 },
        GuestFile { path: "customize.sh", contents: "#!/bin/sh\n", mode: 0o755 },
    ]
}

#[test]
fn hash_is_stable_and_short_hex() {
    let a = recipe_hash(Release::Bookworm, &files(), CODE);
    let b = recipe_hash(Release::Bookworm, &files(), CODE);
    assert_eq!(a, b);
    assert_eq!(a.len(), 16);
    assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
}

#[test]
fn hash_ignores_file_order() {
    let mut reversed = files();
    reversed.reverse();
    assert_eq!(
        recipe_hash(Release::Bookworm, &files(), CODE),
        recipe_hash(Release::Bookworm, &reversed, CODE)
    );
}

#[test]
fn hash_changes_with_every_input() {
    let base = recipe_hash(Release::Bookworm, &files(), CODE);
    assert_ne!(base, recipe_hash(Release::Trixie, &files(), CODE), "release");

    let mut text = files();
    text[0].contents = "systemd-sysv\ndbus\nstrace\n";
    assert_ne!(base, recipe_hash(Release::Bookworm, &text, CODE), "package list");

    let mut mode = files();
    mode[1].mode = 0o644;
    assert_ne!(base, recipe_hash(Release::Bookworm, &mode, CODE), "mode");

    let mut renamed = files();
    renamed[1].path = "customise.sh";
    assert_ne!(base, recipe_hash(Release::Bookworm, &renamed, CODE), "path");

    let code: &[(&str, &[u8])] = &[("src/image.rs", b"fn build() { mkfs() }")];
    assert_ne!(base, recipe_hash(Release::Bookworm, &files(), code), "recipe code");

    // Text moved between files must not collide.
    let a =
        [GuestFile { path: "a", contents: "xy", mode: 0 }, GuestFile { path: "b", contents: "", mode: 0 }];
    let b =
        [GuestFile { path: "a", contents: "x", mode: 0 }, GuestFile { path: "b", contents: "y", mode: 0 }];
    assert_ne!(recipe_hash(Release::Bookworm, &a, CODE), recipe_hash(Release::Bookworm, &b, CODE));
}

#[test]
fn embedded_recipe_keys_the_cache_by_release() {
    let bookworm = Recipe::new(Release::Bookworm);
    assert!(bookworm.key().starts_with("bookworm-"));
    assert_eq!(bookworm.key(), format!("bookworm-{}", bookworm.hash()));
    assert_ne!(bookworm.hash(), Recipe::new(Release::Trixie).hash());
    assert!(GUEST_FILES.iter().any(|f| f.path.ends_with("sandkasten-harness.service")));
}

#[test]
fn package_list_has_what_the_harness_needs() {
    let packages = Recipe::new(Release::Bookworm).packages();
    for needed in ["systemd-sysv", "dbus", "linux-image-cloud-amd64", "busybox-static", "bash"] {
        assert!(packages.contains(&needed), "{needed} missing from {packages:?}");
    }
    assert_eq!(parse_packages("# comment\n a  # trailing\n\nb\n"), ["a", "b"]);
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
