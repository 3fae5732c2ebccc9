//! picoclaw-bench: load generator and baseline server (see BENCHMARKS.md).

fn main() {}
