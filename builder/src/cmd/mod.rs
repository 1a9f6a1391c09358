//! One module per subcommand.

pub mod build;
pub mod images;
pub mod inspect;
mod interrupt;
pub mod load;
pub mod plan;
pub mod pull;
pub mod quick;
pub mod rmi;
pub mod run;
pub mod tag;
