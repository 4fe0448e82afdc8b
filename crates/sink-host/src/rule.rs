//! Binding rules (being written).
