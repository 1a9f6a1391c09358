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
//!
//! Without its default `std` feature it is `no_std` (with `alloc`) and holds
//! only what the init needs: the plan's data types, the events and the pod
//! types those use. Parsing, validation and resolving need `std`.
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(missing_docs)]

extern crate alloc;

#[cfg(feature = "std")]
pub mod argv;
pub mod channel;
pub mod devices;
#[cfg(feature = "std")]
pub mod document;
#[cfg(feature = "std")]
pub mod downward;
#[cfg(feature = "std")]
pub mod env;
pub mod error;
pub mod events;
pub mod hostpath;
#[cfg(feature = "std")]
pub mod ignored;
#[cfg(feature = "std")]
pub mod image;
#[cfg(feature = "std")]
pub mod managed;
#[cfg(feature = "std")]
pub mod network;
#[cfg(feature = "std")]
pub mod objects;
pub mod plan;
pub mod pod;
#[cfg(feature = "std")]
pub mod quantity;
#[cfg(feature = "std")]
pub mod reference;
#[cfg(feature = "std")]
pub mod signals;
#[cfg(feature = "std")]
pub mod validate;
#[cfg(feature = "std")]
pub mod volumes;
#[cfg(feature = "std")]
pub mod workload;

pub use error::Error;
#[cfg(feature = "std")]
pub use image::ImageConfig;
pub use plan::{ContainerPlan, Plan};
#[cfg(feature = "std")]
pub use pod::Pod;
