//! Pulling from registries: the OCI distribution protocol over HTTP(S),
//! configured as the containers ecosystem configures it.

pub mod auth;
pub mod challenge;
pub mod client;
pub mod config;
pub mod errors;
mod tls;
