//! The sink host (being written).

pub mod rule;
