//! Starting `picoclaw gateway` in the background: the one spawner behind the CLI's
//! `gateway start` and the launcher's gateway control.
//!
//! The child gets its own process group, so a Ctrl-C in the starter's terminal reaches
//! only the starter (which then stops the child gracefully, or leaves it running), and no
//! standard input. Readiness is the child's `.picoclaw.pid` record, which callers wait for
//! with [`crate::probe`].

use std::path::Path;
use std::process::{Child, Command, Stdio};

use picoclaw_config::{CONFIG_VAR, HOME_VAR, Paths};

/// `<exe> gateway [flags]`, being prepared.
#[derive(Debug)]
pub struct Background {
    command: Command,
}

impl Background {
    /// `exe gateway`: no stdin, output discarded (the gateway writes `logs/gateway.log`
    /// itself), this process's environment, its own process group.
    pub fn new(exe: &Path) -> Background {
        let mut command = Command::new(exe);
        command.arg("gateway").stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        Background { command }
    }

    /// Adds `--name value`.
    pub fn flag(mut self, name: &str, value: &str) -> Background {
        self.command.args([name, value]);
        self
    }

    /// Clears the environment but for `PICOCLAW_HOME` and `PICOCLAW_CONFIG` of `paths`,
    /// so the child resolves its credentials from the files alone (the launcher: a
    /// variable of the launcher's shell must not shadow what the dashboard manages).
    pub fn only_paths(mut self, paths: &Paths) -> Background {
        self.command.env_clear().env(HOME_VAR, paths.home()).env(CONFIG_VAR, paths.config_file());
        self
    }

    /// Pipes stdout and stderr to the starter (the launcher shows them).
    pub fn piped_output(mut self) -> Background {
        self.command.stdout(Stdio::piped()).stderr(Stdio::piped());
        self
    }

    /// The prepared command (the launcher turns it into a `tokio::process::Command`).
    pub fn into_command(self) -> Command {
        self.command
    }

    /// Starts it.
    pub fn spawn(mut self) -> std::io::Result<Child> {
        self.command.spawn()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_is_gateway_with_flags_and_only_the_paths() {
        let paths = Paths::at("/h");
        let cmd = Background::new(Path::new("/bin/picoclaw"))
            .flag("--port", "1")
            .only_paths(&paths)
            .piped_output()
            .into_command();
        assert_eq!(cmd.get_program(), "/bin/picoclaw");
        let args: Vec<_> = cmd.get_args().collect();
        assert_eq!(args, ["gateway", "--port", "1"]);
        let env: Vec<_> = cmd.get_envs().map(|(k, v)| (k.to_owned(), v.map(ToOwned::to_owned))).collect();
        assert_eq!(
            env,
            [(CONFIG_VAR.into(), Some("/h/config.json".into())), (HOME_VAR.into(), Some("/h".into()))],
            "only the paths (sorted by name)"
        );
    }
}
