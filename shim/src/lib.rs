//! elstream shim.
