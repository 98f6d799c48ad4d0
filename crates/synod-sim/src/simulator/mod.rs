//! The deterministic simulator and the model checks.
