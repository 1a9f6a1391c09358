//! pod1's pod manifest and the plan derived from it.
//!
//! The manifest is a JSON subset of a Kubernetes `v1` `Pod` ([`pod::Pod`]).
//! [`pod::Pod::parse`] rejects unknown fields and names the JSON path of every
//! error; [`validate::validate`] checks the rules Kubernetes' API server
//! would; [`plan::resolve`] combines the pod with each image's configuration
//! into a [`plan::Plan`]: the exact argv, environment, working directory and
//! user of every container. The builder writes the plan into the initramfs and
//! the init reads it back, so both share these types.
//!
//! This crate is pure: it makes no system calls and reads no files.
#![deny(missing_docs)]

pub mod argv;
pub mod env;
pub mod error;
pub mod events;
pub mod image;
pub mod plan;
pub mod pod;
pub mod quantity;
pub mod validate;

pub use error::Error;
pub use image::ImageConfig;
pub use plan::{ContainerPlan, Plan};
pub use pod::Pod;
