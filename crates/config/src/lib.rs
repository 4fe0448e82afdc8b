//! Postern configuration (being written).
