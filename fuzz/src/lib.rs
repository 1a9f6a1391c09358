//! pod1's fuzz targets' code, one module per input format; the binaries in
//! `src/bin/` hand it afl's inputs. The regression tests of the root
//! workspace include these files by path (they cannot depend on this crate,
//! which is not in that workspace).

pub mod image;
pub mod manifest;
pub mod registry;
