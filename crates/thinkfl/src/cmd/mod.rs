//! One module per subcommand.
pub mod import;
pub mod inspect;
pub mod eval;
pub mod simulate;
