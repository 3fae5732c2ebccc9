//! One loader: no library or binary code outside `picoclaw_credentials::load` assembles
//! the configuration pipeline (`Layers::load` → `Settings::resolve` →
//! `Credentials::resolve`) itself, so every process resolves settings and secrets the same
//! way. Test code (a file's `#[cfg(test)]` part, `tests/`) may build fixtures directly.

use std::path::{Path, PathBuf};

const PIPELINE: &[&str] = &["Layers::load(", "Settings::resolve(", "Credentials::resolve("];

/// Where the pipeline may be assembled: the loader itself, and the function each step is.
const ALLOWED: &[&str] =
    &["crates/credentials/src/load.rs", "crates/config/src/", "crates/credentials/src/resolve.rs"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "tests" || n == "target") {
                continue;
            }
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn only_the_loader_assembles_the_pipeline() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    rust_files(&root.join("crates"), &mut files);
    assert!(files.len() > 50, "found the workspace sources ({} files)", files.len());
    let mut offenders = Vec::new();
    for file in files {
        let relative = file.strip_prefix(&root).unwrap_or(&file).to_string_lossy().replace('\\', "/");
        if ALLOWED.iter().any(|a| relative.starts_with(a)) || relative.ends_with("/tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        // Unit tests sit at the end of a file, after `#[cfg(test)]`.
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        for step in PIPELINE {
            if code.contains(step) {
                offenders.push(format!("{relative}: {step}"));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "load settings and credentials with picoclaw_credentials::load, not by hand:\n{}",
        offenders.join("\n")
    );
}
