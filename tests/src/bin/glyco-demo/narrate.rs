//! How the demo prints: numbered sections, one line per step, and each
//! transaction's hash and gas.

use glyco_contracts::{ChainError, TxOutcome};

pub fn section(title: &str) {
    println!("\n== {title}");
}

pub fn step(what: &str) {
    println!("  - {what}");
}

pub fn tx(what: &str, outcome: &TxOutcome) {
    println!(
        "  - {what}\n      tx {}  gas {:>7}  block {}",
        outcome.hash, outcome.gas_used, outcome.block
    );
}

pub fn refused(what: &str, error: &ChainError) {
    println!("  - {what}\n      refused as expected: {error}");
}

pub fn done() {
    println!("\nDemo complete.");
}
