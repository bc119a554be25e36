//! Telemetry store (under construction by the foundation issue).
