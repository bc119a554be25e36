//! One module per subcommand.
pub mod import;
pub mod inspect;
pub mod eval;
pub mod simulate;
pub mod bench_store;
pub mod bench_tools;
pub mod incidents;
pub mod serve;
pub mod tools;
pub mod train;
pub mod report;
