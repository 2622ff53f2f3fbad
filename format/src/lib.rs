//! The GHC eventlog binary format and elstream's wire protocols.
//! This crate is the only code in elstream that knows byte layouts.
