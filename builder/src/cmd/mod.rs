//! One module per subcommand.

pub mod build;
pub mod images;
pub mod load;
pub mod pull;
pub mod rmi;
pub mod tag;
pub mod inspect;
pub mod plan;
pub mod run;
