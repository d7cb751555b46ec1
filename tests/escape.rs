//! Catalogue section: the experiments of `isocheck::experiments` for this
//! section, one test each, named by catalogue id.

fn main() {
    isocheck::testmain::main(
        &[isocheck::experiment::Section::Escape],
        env!("CARGO_BIN_EXE_isocheck"),
        env!("CARGO_TARGET_TMPDIR"),
    )
}
