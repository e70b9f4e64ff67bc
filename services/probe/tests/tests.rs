//! Integration tests: the real probe binary, as root, against a real canary,
//! each test inside a network namespace of its own.

// Temp dirs, network namespaces, the canary, running the probe.
mod util;

// The unsandboxed control: the exact set of escapes this machine allows.
mod control;

// Local restrictions: namespaces and read-only mounts, a non-root uid, seccomp.
mod restricted;
