//! End-to-end tests of the whole system live in `tests/`; the demo binary
//! `glyco-demo` walks the same flows on the embedded defaults.
#![forbid(unsafe_code)]
