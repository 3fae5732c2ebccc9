use std::sync::Arc;

use super::*;

fn open(dir: &Path) -> Arc<SqliteStore> {
    SqliteStore::open(dir, StoreOptions::default()).unwrap()
}

fn turn(session: &str, user: &str, answer: &str) -> TurnRecord {
    TurnRecord {
        session: session.into(),
        user: (0, user.into()),
        answer: (0, "m1".into(), answer.into()),
        ts_ms: 1,
    }
}

#[tokio::test]
async fn the_first_claim_owns_and_survives_a_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sessions");
    {
        let s = open(&dir);
        assert_eq!(s.claim("a".into(), "alice".into()).await.unwrap().owner, "alice");
        assert_eq!(s.claim("a".into(), "bob".into()).await.unwrap().owner, "alice");
        assert_eq!(s.cached_owner("a").unwrap().owner, "alice");
    }
    let s = open(&dir);
    assert!(s.cached_owner("a").is_none(), "a new process asks the file");
    assert_eq!(s.claim("a".into(), "bob".into()).await.unwrap().owner, "alice");
    // A session with history but no owner (recorded before any claim) goes to its first
    // claimer, and stays with it; its seq continues.
    s.record_turn(turn("unowned", "u", "a")).await.unwrap();
    let first = s.claim("unowned".into(), "bob".into()).await.unwrap();
    assert_eq!((first.owner.as_str(), first.last_seq), ("bob", 2));
    assert_eq!(s.claim("unowned".into(), "alice".into()).await.unwrap().owner, "bob");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("sessions.db")), 0o600);
    }
}

#[tokio::test]
async fn turns_are_numbered_kept_in_order_and_paged() {
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path());
    s.claim("t".into(), "p".into()).await.unwrap();
    for i in 0..5 {
        s.record_turn(turn("t", &format!("q{i}"), &format!("a{i}"))).await.unwrap();
    }
    let all = s.messages("t".into(), 0, 100).await.unwrap();
    assert_eq!(all.len(), 10);
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    let page = s.messages("t".into(), all[3].seq, 2).await.unwrap();
    assert_eq!(page.iter().map(|m| m.content.as_str()).collect::<Vec<_>>(), ["q2", "a2"]);
    let h = s.history("t".into(), 3, 1 << 20).await.unwrap();
    assert_eq!(h.iter().map(|m| m.content.as_str()).collect::<Vec<_>>(), ["a3", "q4", "a4"]);
    assert_eq!(s.claim("t".into(), "p".into()).await.unwrap().last_seq, all[9].seq);
    let info = s.session("t".into()).await.unwrap().unwrap();
    assert_eq!((info.messages, info.owner.as_str()), (10, "p"));
}

#[tokio::test]
async fn many_writers_share_commits_and_none_is_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path());
    let mut tasks = Vec::new();
    for w in 0..50 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..20 {
                s.record_turn(turn(&format!("s{w}"), &format!("q{i}"), "a")).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    drop(s);
    let s = open(tmp.path());
    for w in [0, 25, 49] {
        assert_eq!(s.messages(format!("s{w}"), 0, 1000).await.unwrap().len(), 40);
    }
}

#[tokio::test]
async fn the_session_bound_rolls_and_the_total_bound_refuses() {
    let tmp = tempfile::tempdir().unwrap();
    // Three sessions' rows and 300 bytes of text.
    let max_total_bytes = 300 + 3 * SESSION_ROW_BYTES;
    let s = SqliteStore::open(tmp.path(), StoreOptions { max_session_bytes: 100, max_total_bytes }).unwrap();
    for i in 0..10 {
        s.record_turn(turn("roll", &format!("{i:0>20}"), &format!("{i:0>20}"))).await.unwrap();
    }
    let kept = s.messages("roll".into(), 0, 100).await.unwrap();
    let bytes: usize = kept.iter().map(|m| m.content.len()).sum();
    assert!(bytes <= 100 && !kept.is_empty(), "{bytes}");
    assert_eq!(kept.last().unwrap().content, format!("{:0>20}", 9), "the newest stays");
    let big = "x".repeat(90);
    s.record_turn(turn("b", &big, &big)).await.unwrap();
    assert!(matches!(s.record_turn(turn("c", &big, &big)).await, Err(StoreError::Full { .. })));
    assert!(s.messages("c".into(), 0, 10).await.unwrap().is_empty(), "nothing half-written");
    assert!(s.delete("b".into()).await.unwrap());
    s.check_room("c").unwrap();
    s.record_turn(turn("c", &big, &big)).await.unwrap();
}

#[tokio::test]
async fn old_jsonl_files_are_imported_once_and_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sessions");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("old.jsonl"),
        "{\"v\":1,\"owner\":\"alice\",\"created_ms\":5}\n{\"role\":\"user\",\"content\":\"hi\",\"ts_ms\":6}\n\
         {\"role\":\"assistant\",\"content\":\"hello\",\"ts_ms\":7}\n{\"role\":\"us",
    )
    .unwrap();
    {
        let s = open(&dir);
        assert_eq!(s.claim("old".into(), "bob".into()).await.unwrap().owner, "alice");
        let m = s.messages("old".into(), 0, 10).await.unwrap();
        assert_eq!(m.iter().map(|m| m.content.as_str()).collect::<Vec<_>>(), ["hi", "hello"]);
    }
    assert!(!dir.join("old.jsonl").exists() && dir.join("jsonl-backup/old.jsonl").exists());
    // A file put back (or left by a crash after the commit) is moved, not imported again.
    std::fs::copy(dir.join("jsonl-backup/old.jsonl"), dir.join("old.jsonl")).unwrap();
    let s = open(&dir);
    assert_eq!(s.messages("old".into(), 0, 10).await.unwrap().len(), 2);
    assert!(!dir.join("old.jsonl").exists());
}

#[test]
fn the_used_bytes_query_counts_rows_at_session_row_bytes() {
    assert!(super::USED_SQL.ends_with(&format!("COUNT(*) * {} FROM sessions", super::SESSION_ROW_BYTES)));
}

#[tokio::test]
async fn sessions_claimed_and_never_used_fill_the_budget_not_the_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let options = StoreOptions { max_session_bytes: 100, max_total_bytes: 2 * SESSION_ROW_BYTES };
    {
        let s = SqliteStore::open(tmp.path(), options).unwrap();
        s.claim("a".into(), "mallory".into()).await.unwrap();
        s.claim("b".into(), "mallory".into()).await.unwrap();
        assert!(matches!(s.claim("c".into(), "mallory".into()).await, Err(StoreError::Full { .. })));
        assert_eq!(
            s.claim("a".into(), "alice".into()).await.unwrap().owner,
            "mallory",
            "existing ones still answer"
        );
        assert!(s.check_room("x").is_err());
        assert!(s.delete("b".into()).await.unwrap());
        s.claim("c".into(), "mallory".into()).await.unwrap();
    }
    let s = SqliteStore::open(tmp.path(), options).unwrap();
    let listed: Vec<String> = s.sessions(None, 10).await.unwrap().into_iter().map(|i| i.id).collect();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(
        matches!(s.claim("d".into(), "mallory".into()).await, Err(StoreError::Full { .. })),
        "counted again on open"
    );
}
