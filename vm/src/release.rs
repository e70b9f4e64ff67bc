//! The Debian releases the guest is built from.
//!
//! Kept out of `image.rs` on purpose: that file is part of the image recipe
//! (its hash names the cache), and a new variant here must not rebuild the
//! images of the releases that already exist. The code name itself is hashed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// A Debian release the guest can be built from.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Release {
    /// Debian 12: systemd 252, built without the BPF framework.
    Bookworm,
    /// Debian 13: systemd 257, with the BPF framework.
    Trixie,
    /// Debian unstable: the newest systemd and kernel Debian ships. It moves:
    /// `sandkasten-vm image` builds it again once it is older than
    /// [`Release::max_image_age`], and every report names the image's build.
    Sid,
}

impl Release {
    /// Every release, oldest first: what `--release all` runs.
    pub const ALL: [Release; 3] = [Release::Bookworm, Release::Trixie, Release::Sid];

    /// Whether the release changes from day to day (sid), rather than only
    /// through point releases.
    pub fn moves(self) -> bool {
        self == Release::Sid
    }

    /// How old `sandkasten-vm image` lets a cached image get before it
    /// builds it again: a week for a release that moves, none for one that
    /// changes only through point releases (`--rebuild` or `--max-age`).
    pub fn max_image_age(self) -> Option<std::time::Duration> {
        self.moves().then(|| std::time::Duration::from_secs(7 * 86_400))
    }

    /// The Debian code name, as mmdebstrap and the mirror know it.
    pub fn codename(self) -> &'static str {
        match self {
            Release::Bookworm => "bookworm",
            Release::Trixie => "trixie",
            Release::Sid => "sid",
        }
    }
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.codename())
    }
}

impl FromStr for Release {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Release::ALL.into_iter().find(|r| r.codename() == s).ok_or_else(|| {
            let known: Vec<&str> = Release::ALL.iter().map(|r| r.codename()).collect();
            Error::Config(format!("unknown release {s:?} (one of {})", known.join(", ")))
        })
    }
}

/// `--release` of the commands that may run several: one release, a
/// comma-separated list (`bookworm,trixie`), or `all`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Releases(Vec<Release>);

impl Releases {
    /// The releases to run, in the order given (`all`: oldest first).
    pub fn list(&self) -> Vec<Release> {
        self.0.clone()
    }
}

impl FromStr for Releases {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "all" {
            return Ok(Releases(Release::ALL.to_vec()));
        }
        let mut releases = Vec::new();
        for name in s.split(',') {
            let release = name.trim().parse().map_err(|_| {
                let known: Vec<&str> = Release::ALL.iter().map(|r| r.codename()).collect();
                format!(
                    "unknown release {name:?} (one of {}, a comma-separated list, or all)",
                    known.join(", ")
                )
            })?;
            if !releases.contains(&release) {
                releases.push(release);
            }
        }
        Ok(Releases(releases))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_listed() {
        for release in Release::ALL {
            assert_eq!(release.codename().parse::<Release>().unwrap(), release);
        }
        let error = "buster".parse::<Release>().unwrap_err().to_string();
        assert!(error.contains("buster") && error.contains("bookworm, trixie, sid"), "{error}");
        assert_eq!("all".parse::<Releases>().unwrap().list(), Release::ALL.to_vec());
        assert_eq!("sid".parse::<Releases>().unwrap().list(), vec![Release::Sid]);
        assert_eq!(
            "trixie,bookworm".parse::<Releases>().unwrap().list(),
            vec![Release::Trixie, Release::Bookworm]
        );
        let error = "bookworm,buster".parse::<Releases>().unwrap_err();
        assert!(error.contains("\"buster\""), "{error}");
    }
}
