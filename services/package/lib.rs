//! The Debian package `sandkasten`: see this crate's `Cargo.toml`
//! (`[package.metadata.deb]`) for what goes where, and `units/debian/` for
//! the maintainer scripts. No code lives here.
