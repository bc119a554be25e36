//! One module per subcommand.
pub mod bench;
pub mod bench_store;
pub mod bench_tools;
pub mod chat;
pub mod demo;
pub mod eval;
pub mod import;
pub mod incidents;
pub mod inspect;
pub mod localize;
pub mod model;
pub mod models;
pub mod report;
pub mod serve;
pub mod simulate;
pub mod tools;
pub mod train;
