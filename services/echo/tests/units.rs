//! The reference units that run sandkasten-echo (sandkasten-echo.service
//! and sandkasten-echo-inetd@.service, with their sockets; see
//! `sandkasten_tests::units::owners`), checked against the binary these
//! tests run. tests/units.rs checks what needs no binary.

use sandkasten_tests::units;

use crate::ECHO;

#[test]
fn its_units_pass_verify_with_the_binary_in_place() {
    units::verify_owned("sandkasten-echo", ECHO);
}

#[test]
fn exec_paths_cover_every_library_it_loads() {
    units::assert_exec_paths_cover("sandkasten-echo", ECHO);
}
