//! A throwaway PostgreSQL server for the replica tests (issue 20): `initdb` in a temporary
//! directory with a password (`scram-sha-256`, no trust), `pg_ctl start` on a free
//! loopback port with its socket directory inside that directory, stopped
//! (`pg_ctl stop -m immediate`) and removed on drop.
//!
//! Debian's binaries live in `/usr/lib/postgresql/<version>/bin` (not on PATH). `initdb`
//! refuses to run as root: as root (CI) every server command runs as the `postgres` system
//! user the package creates (`runuser -u postgres --`), with the directory chowned to it.
//! Without PostgreSQL the tests skip, unless PICOCLAW_REQUIRE_TOOLS is set (scripts/test
//! installs Debian's `postgresql` and sets it): then they fail.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The superuser's password in every throwaway server.
pub const PASSWORD: &str = "pg-test-password-0123456789";
/// The superuser's name.
pub const USER: &str = "picoclaw";

/// A running server; stopped and removed on drop.
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// As root: the uid/gid of the `postgres` user that owns the server.
    run_as: Option<(u32, u32)>,
    port: u16,
}

/// The directory of Debian's PostgreSQL binaries (the highest version installed).
fn bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_ctl").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, b)| b)
}

fn id_of(flag: &str) -> Option<u32> {
    let out = Command::new("id").args([flag, "postgres"]).output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port()
}

impl Postgres {
    /// Starts a fresh server, or `None` (with a note) when PostgreSQL is not installed and
    /// PICOCLAW_REQUIRE_TOOLS is unset.
    pub fn start() -> Option<Postgres> {
        let Some(bin) = bin_dir() else {
            assert!(
                std::env::var_os("PICOCLAW_REQUIRE_TOOLS").is_none(),
                "PostgreSQL is required (PICOCLAW_REQUIRE_TOOLS is set): apt-get install postgresql"
            );
            eprintln!("skipped: PostgreSQL is not installed (/usr/lib/postgresql/*/bin)");
            return None;
        };
        let run_as = if is_root() {
            Some((
                id_of("-u").expect("the postgres user (Debian's package creates it)"),
                id_of("-g").expect("gid"),
            ))
        } else {
            None
        };
        let dir = tempfile::Builder::new().prefix("picoclaw-pg-").tempdir().expect("tempdir");
        let mut pg = Postgres { dir, bin, run_as, port: free_port() };
        let pwfile = pg.path().join("pwfile");
        std::fs::write(&pwfile, PASSWORD).unwrap();
        std::fs::create_dir(pg.path().join("sock")).unwrap();
        if let Some((uid, gid)) = run_as {
            for p in [pg.path().to_owned(), pwfile.clone(), pg.path().join("sock")] {
                std::os::unix::fs::chown(&p, Some(uid), Some(gid)).expect("chown to postgres");
            }
        }
        let data = pg.path().join("data");
        let out = pg
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", USER, "-A", "scram-sha-256", "-E", "UTF8", "--no-sync"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .expect("run initdb");
        assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        // A port taken between picking and binding: try a few.
        for _ in 0..5 {
            let options = format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100",
                pg.port,
                pg.path().join("sock").display()
            );
            let status = pg
                .command("pg_ctl")
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(pg.path().join("server.log"))
                .args(["-w", "-t", "60", "-o", &options, "start"])
                .stdout(Stdio::null())
                .status()
                .expect("run pg_ctl");
            if status.success() {
                return Some(pg);
            }
            pg.port = free_port();
        }
        panic!("PostgreSQL did not start: {}", pg.log());
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// One of the server's programs, as the `postgres` user when we are root.
    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        let mut command = match self.run_as {
            Some(_) => {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(program);
                c
            }
            None => Command::new(program),
        };
        command.current_dir(self.path());
        command
    }

    /// The server's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path().join("server.log")).unwrap_or_default()
    }

    /// `storage.url` for database `db` (no password: it goes in PICOCLAW_STORAGE_PASSWORD).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{db}", self.port)
    }

    /// A client connection to `db` with the password (the test's own look into the
    /// database); its connection task runs on the current runtime.
    pub async fn client(&self, db: &str) -> tokio_postgres::Client {
        let mut config = tokio_postgres::Config::new();
        config.host("127.0.0.1").port(self.port).user(USER).password(PASSWORD).dbname(db);
        let (client, conn) = config.connect(tokio_postgres::NoTls).await.expect("connect to the test server");
        tokio::spawn(conn);
        client
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.path().join("data"))
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
