//! The local image store (being written).
