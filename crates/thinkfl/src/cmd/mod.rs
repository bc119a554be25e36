//! One module per subcommand.
pub mod import;
pub mod inspect;
pub mod simulate;
