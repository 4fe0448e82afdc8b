//! Postern queue (being written).
