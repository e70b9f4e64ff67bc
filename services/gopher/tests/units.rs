//! The reference unit that runs sandkasten-gopher (sandkasten-gopher.service
//! with its socket; see `sandkasten_tests::units::owners`), checked against
//! the binary these tests run. tests/units.rs checks what needs no binary.

use sandkasten_tests::units;

use crate::GOPHER;

#[test]
fn its_units_pass_verify_with_the_binary_in_place() {
    units::verify_owned("sandkasten-gopher", GOPHER);
}

#[test]
fn exec_paths_cover_every_library_it_loads() {
    units::assert_exec_paths_cover("sandkasten-gopher", GOPHER);
}
