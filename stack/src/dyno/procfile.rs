//! A Procfile: one process type a line, `name: command`, as Heroku reads it. Blank lines and
//! `#` comments are skipped; a name is letters, digits, `_` and `-`; a name may appear once.

/// One process type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessType {
    /// `web`, `worker`, …
    pub name: String,
    /// The command, run by a shell.
    pub command: String,
}

/// A parsed Procfile, in file order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Procfile {
    types: Vec<ProcessType>,
}

/// Why a Procfile could not be read, with the line (from 1).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProcfileError {
    /// A line with no `name:`.
    #[error("Procfile line {line}: expected `name: command`")]
    NoName {
        /// The line.
        line: usize,
    },
    /// A name with characters a process type cannot have.
    #[error("Procfile line {line}: {name:?} is not a process type name (letters, digits, _ and -)")]
    BadName {
        /// The line.
        line: usize,
        /// The name.
        name: String,
    },
    /// A name with no command.
    #[error("Procfile line {line}: {name} has no command")]
    NoCommand {
        /// The line.
        line: usize,
        /// The name.
        name: String,
    },
    /// A name given twice.
    #[error("Procfile line {line}: {name} is already defined")]
    Duplicate {
        /// The line.
        line: usize,
        /// The name.
        name: String,
    },
    /// No process type at all.
    #[error("Procfile defines no process type")]
    Empty,
}

impl Procfile {
    /// Reads a Procfile's text.
    pub fn parse(text: &str) -> Result<Procfile, ProcfileError> {
        let mut types: Vec<ProcessType> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let (name, command) = trimmed
                .split_once(':')
                .ok_or(ProcfileError::NoName { line })?;
            let name = name.trim();
            if name.is_empty()
                || name.len() > 64
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                return Err(ProcfileError::BadName {
                    line,
                    name: name.to_owned(),
                });
            }
            let command = command.trim();
            if command.is_empty() {
                return Err(ProcfileError::NoCommand {
                    line,
                    name: name.to_owned(),
                });
            }
            if types.iter().any(|t| t.name == name) {
                return Err(ProcfileError::Duplicate {
                    line,
                    name: name.to_owned(),
                });
            }
            types.push(ProcessType {
                name: name.to_owned(),
                command: command.to_owned(),
            });
        }
        if types.is_empty() {
            return Err(ProcfileError::Empty);
        }
        Ok(Procfile { types })
    }

    /// Every process type, in file order.
    pub fn types(&self) -> &[ProcessType] {
        &self.types
    }

    /// The command of a process type.
    pub fn command(&self, name: &str) -> Option<&str> {
        self.types
            .iter()
            .find(|t| t.name == name)
            .map(|t| t.command.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_types_in_order_with_comments_and_colons_in_commands() {
        let p = Procfile::parse(
            "# the app\nweb: bundle exec puma -p $PORT\n\n  worker :  ./work --queue=a:b  \nrelease-tasks: ./migrate\n",
        )
        .unwrap();
        let names: Vec<&str> = p.types().iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["web", "worker", "release-tasks"]);
        assert_eq!(p.command("worker"), Some("./work --queue=a:b"));
        assert_eq!(p.command("clock"), None);
    }

    #[test]
    fn bad_procfiles_say_which_line_and_why() {
        assert_eq!(
            Procfile::parse("web ./server"),
            Err(ProcfileError::NoName { line: 1 })
        );
        assert_eq!(
            Procfile::parse("\nweb app: ./x"),
            Err(ProcfileError::BadName {
                line: 2,
                name: "web app".into()
            })
        );
        assert_eq!(
            Procfile::parse("web:   "),
            Err(ProcfileError::NoCommand {
                line: 1,
                name: "web".into()
            })
        );
        assert_eq!(
            Procfile::parse("web: a\nweb: b"),
            Err(ProcfileError::Duplicate {
                line: 2,
                name: "web".into()
            })
        );
        assert_eq!(Procfile::parse("# nothing\n\n"), Err(ProcfileError::Empty));
        assert!(Procfile::parse(": x").is_err());
        assert!(Procfile::parse("\u{0}: x").is_err());
    }
}
