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

/// A cached image of sid whose manifest says when it was built, or (an
/// image from before that was recorded) says nothing.
fn cached_sid(built: Option<&str>) -> (tempfile::TempDir, sandkasten_vm::Image) {
    let cache = tempfile::tempdir().unwrap();
    let recipe = Recipe::new(Release::Sid);
    let dir = cache.path().join("images").join(recipe.key());
    std::fs::create_dir_all(&dir).unwrap();
    let built = built.map(|b| format!(r#","built":"{b}""#)).unwrap_or_default();
    let manifest = format!(
        r#"{{"release":"sid","recipe_hash":"{}","kernel":"7.2","systemd":"262","mirror":"http://m",
        "build_seconds":1.0,"packages":["bash=5.2","libc6=2.43-7","libseccomp2=2.6.1-1","linux-image-cloud-amd64=7.2.13-1",
        "systemd=262.1-1","systemd-sysv=262.1-1","zlib1g=1:1.3"]{built}}}"#,
        recipe.hash()
    );
    std::fs::write(dir.join("manifest.json"), manifest).unwrap();
    let image = sandkasten_vm::Image::cached(&recipe, cache.path()).unwrap().expect("cached");
    (cache, image)
}

/// A report names the build it measured: when, which recipe, and the
/// versions of what a sandbox goes through (not every package).
#[test]
fn a_report_names_the_images_build_and_the_sandboxes_packages() {
    let (_cache, image) = cached_sid(Some("2026-01-02T03:04:05Z"));
    let info = image.info();
    assert_eq!(info.built, "2026-01-02T03:04:05Z");
    assert_eq!(info.recipe, Recipe::new(Release::Sid).hash());
    assert_eq!(
        info.packages,
        [
            "libc6=2.43-7",
            "libseccomp2=2.6.1-1",
            "linux-image-cloud-amd64=7.2.13-1",
            "systemd=262.1-1",
            "systemd-sysv=262.1-1"
        ]
    );
}

/// sid moves daily: `image` builds it again after a week, the stable
/// releases only when asked; an image without a recorded build time is as
/// old as its manifest file.
#[test]
fn an_image_older_than_its_releases_limit_is_stale() {
    let week = std::time::Duration::from_secs(7 * 86_400);
    assert_eq!(Release::Sid.max_image_age(), Some(week));
    assert_eq!(Release::Bookworm.max_image_age(), None);
    assert_eq!(Release::Trixie.max_image_age(), None);
    let (_old, old) = cached_sid(Some("2026-01-02T03:04:05Z"));
    assert!(old.is_older_than(week));
    let (_new, unrecorded) = cached_sid(None);
    assert!(!unrecorded.is_older_than(week), "its manifest was written just now");
    assert!(unrecorded.age() < std::time::Duration::from_secs(60));
}
