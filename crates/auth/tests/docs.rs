//! docs/credentials.md carries the endpoint table exactly as the code defines it (the
//! table the gateway's router is built from), so the documentation cannot drift.

#[test]
fn docs_credentials_md_has_the_endpoint_table() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/credentials.md");
    let docs = std::fs::read_to_string(path).expect("docs/credentials.md");
    let table = picoclaw_auth::endpoints::markdown_table();
    if !docs.contains(&table) {
        let out = std::env::temp_dir().join("picoclaw-endpoint-table.md");
        let _ = std::fs::write(&out, &table);
        panic!(
            "docs/credentials.md does not contain the endpoint table of picoclaw_auth::endpoints; \
             the current table is in {}:\n{table}",
            out.display()
        );
    }
}
