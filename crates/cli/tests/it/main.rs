//! The command line's black-box tests: one test binary (`cargo test -p picoclaw --test it`),
//! one module per area, each running the real `picoclaw` binary on a temporary home.
//! Run one module with `cargo test -p picoclaw --test it security::`.

// Shared harness.
#[path = "../../../agent/tests/fake_provider/mod.rs"]
mod fake_provider;
mod launcher_support;
mod postgres_support;
mod support;
mod upstream_server;

// One module per area (formerly one test binary each).
mod abuse;
mod abuse_launcher;
mod abuse_timing;
mod agent;
mod base_path;
mod bounds;
mod browser;
mod canary;
mod chat;
mod conformance;
mod deploy;
mod doctor;
mod faults;
mod foundation;
mod gateway;
mod golden;
mod history;
mod launcher;
mod launcher_security;
mod login_link;
mod media;
mod newcomer;
mod node_recipe;
mod origins;
mod pairing;
mod pico_client;
mod protocol;
mod proxy;
mod replicas;
mod secret_files;
mod security;
mod service;
mod token;
mod token_live;
mod tray;
mod tui;
mod tunnels;
mod untrusted_inputs;
mod upstream;
