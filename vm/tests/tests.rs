//! sandkasten-vm's tests, one target (`autotests = false`).

// Recipe hashing, package list and mirror parsing: no qemu, no network.
mod recipe;
// The accelerator decision, with the device check and probe faked.
mod accel;
// The run loop against a fake qemu: retry on crash, errors, port protocol.
mod fake;
// Real guests under TCG: builds (or reuses) the bookworm image, minutes when cold.
mod guest;
// `harden` on the lab's Python example and lab step 0 (TCG, minutes each).
mod harden;
// The probe's host tests again inside the bookworm guest (kernel 6.1).
mod probe_in_guest;
// A systemd under test (--systemd DIR): bookworm-backports' over bookworm's (TCG, minutes).
mod systemd_build;
// `sandkasten-vm bench` in a real guest (TCG, about a minute).
mod bench;
// The catalogue against the measured ablation maps (units/ablation/): no guest.
mod catalogue;
// The host crate's modules import in one direction: no circle.
mod architecture;
// Recorded guest answers rendered again, byte for byte: no guest.
mod replay;
// Helpers: running the CLI, serialising the guests.
mod util;
