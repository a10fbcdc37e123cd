//! The command line, parsed strictly against a table of every command's flags: an unknown
//! flag, a flag the command does not take, or a word too many is a usage error (exit 2),
//! never silently ignored. Options may come before or after the command words.

use std::collections::HashMap;

use crate::error::Fail;

/// One command: the words that name it, what it takes, and its lines of the usage text.
pub struct Command {
    pub name: &'static [&'static str],
    /// Flags that take a value (`--type T` or `--type=T`).
    pub flags: &'static [&'static str],
    /// Flags without a value.
    pub switches: &'static [&'static str],
    /// At most this many positional words after the name (`None`: any number).
    pub max_words: Option<usize>,
    /// Its lines of [`crate::usage::USAGE`] (a unit test keeps them in step).
    pub usage: &'static str,
}

/// Options every command takes (the "Global options" of the usage text).
const GLOBAL_FLAGS: &[&str] = &[
    "--api",
    "--tenant",
    "--token",
    "--prefix",
    "--table",
    "--dlq-url",
    "--source-url",
];
const GLOBAL_SWITCHES: &[&str] = &["--json", "--help", "-h"];

pub const COMMANDS: &[Command] = &[
    Command {
        name: &["publish"],
        flags: &[
            "--file",
            "--type",
            "--aggregate",
            "--payload",
            "--version",
            "--correlation",
            "--event-id",
        ],
        switches: &[],
        max_words: Some(0),
        usage: "  publish --file F.json                      publish one event or {\"events\": [...]} from a file ('-' = stdin)\n  publish --type T --aggregate Type/Id --payload JSON [--version N] [--correlation C] [--event-id UUID]",
    },
    Command {
        name: &["history"],
        flags: &[],
        switches: &[],
        max_words: Some(2),
        usage: "  history <AggregateType> <AggregateId>      the aggregate's events in order",
    },
    Command {
        name: &["state"],
        flags: &[],
        switches: &[],
        max_words: Some(2),
        usage: "  state <AggregateType> <AggregateId>        the folded state",
    },
    Command {
        name: &["event"],
        flags: &[],
        switches: &[],
        max_words: Some(1),
        usage: "  event <eventId>                            one event",
    },
    Command {
        name: &["events"],
        flags: &["--type", "--from", "--to", "--limit", "--cursor"],
        switches: &[],
        max_words: Some(0),
        usage: "  events --type T [--from RFC3339] [--to RFC3339] [--limit N] [--cursor C]",
    },
    Command {
        name: &["trace"],
        flags: &[],
        switches: &[],
        max_words: Some(1),
        usage: "  trace <correlationId>                      the causal tree with each handler's outcome",
    },
    Command {
        name: &["replay"],
        flags: &["--aggregate", "--type", "--from", "--to", "--handlers", "--subscriptions"],
        switches: &["--rerun", "--dry-run"],
        max_words: Some(0),
        usage: "  replay --aggregate Type/Id | --type T --from X --to Y\n         [--handlers h1,h2] [--subscriptions id1,id2] [--rerun] [--dry-run]",
    },
    Command {
        name: &["projections", "rebuild"],
        flags: &[],
        switches: &["--async"],
        max_words: Some(1),
        usage: "  projections rebuild <name> [--async]       re-derive a read model (loan-summary) from the events;\n         --async: start it as a job and poll its progress until it is done",
    },
    Command {
        name: &["dlq", "list"],
        flags: &["--domain"],
        switches: &[],
        max_words: Some(0),
        usage: "  dlq list [--domain D]                      messages in each DLQ with event, handler, reason",
    },
    Command {
        name: &["dlq", "redrive"],
        flags: &["--domain", "--event", "--message", "--principal"],
        switches: &["--all"],
        max_words: Some(0),
        usage: "  dlq redrive [--domain D] (--all | --event ID ... | --message ID ...) [--principal P]",
    },
    Command {
        name: &["dlq", "purge"],
        flags: &["--domain", "--principal"],
        switches: &["--yes"],
        max_words: Some(0),
        usage: "  dlq purge --domain D --yes [--principal P] delete every message of that DLQ",
    },
    Command {
        name: &["handler", "list"],
        flags: &[],
        switches: &[],
        max_words: Some(0),
        usage: "  handler list                               handlers, domains and switches",
    },
    Command {
        name: &["handler", "enable"],
        flags: &["--principal"],
        switches: &[],
        max_words: Some(1),
        usage: "  handler enable <name> | handler disable <name> [--principal P]",
    },
    Command {
        name: &["handler", "disable"],
        flags: &["--principal"],
        switches: &[],
        max_words: Some(1),
        usage: "  handler enable <name> | handler disable <name> [--principal P]",
    },
    Command {
        name: &["subscriptions", "create"],
        flags: &["--name", "--url", "--queue-url", "--filter", "--format", "--start-from"],
        switches: &[],
        max_words: Some(0),
        usage: "  subscriptions create --name N --url URL | --queue-url Q [--filter JSON|F.json]\n         [--format cloudevents|envelope] [--start-from RFC3339]   (the secret is shown once)",
    },
    Command {
        name: &["subscriptions", "list"],
        flags: &[],
        switches: &[],
        max_words: Some(0),
        usage: "  subscriptions list                         the tenant's subscriptions",
    },
    Command {
        name: &["subscriptions", "show"],
        flags: &[],
        switches: &[],
        max_words: Some(1),
        usage: "  subscriptions show <id>                    one subscription, its filter and circuit",
    },
    Command {
        name: &["subscriptions", "pause"],
        flags: &[],
        switches: &[],
        max_words: Some(1),
        usage: "  subscriptions pause <id> | resume <id>     deliveries wait while paused",
    },
    Command {
        name: &["subscriptions", "resume"],
        flags: &[],
        switches: &[],
        max_words: Some(1),
        usage: "  subscriptions pause <id> | resume <id>     deliveries wait while paused",
    },
    Command {
        name: &["subscriptions", "delete"],
        flags: &[],
        switches: &[],
        max_words: Some(1),
        usage: "  subscriptions delete <id>",
    },
    Command {
        name: &["subscriptions", "rotate-secret"],
        flags: &[],
        switches: &[],
        max_words: Some(1),
        usage: "  subscriptions rotate-secret <id>           a new secret; the old one signs for a grace period",
    },
    Command {
        name: &["subscriptions", "deliveries"],
        flags: &["--limit", "--cursor"],
        switches: &[],
        max_words: Some(1),
        usage: "  subscriptions deliveries <id> [--limit N] [--cursor C]   the delivery log, newest first",
    },
    Command {
        name: &["handler", "stats"],
        flags: &["--days", "--day"],
        switches: &[],
        max_words: None,
        usage: "  handler stats [<name> ...] [--days N] [--day YYYY-MM-DD]",
    },
];

/// A parsed command line: the command (None for `help` or no command), the positional
/// words after the command's name, flags with their values, and switches.
pub struct Args {
    pub command: Option<&'static Command>,
    /// `evctl help`, `--help` or `-h`: the usage was asked for.
    pub help: bool,
    pub words: Vec<String>,
    flags: HashMap<String, Vec<String>>,
    switches: Vec<String>,
}

/// A usage error found while parsing, with the command it concerns (if known) so the
/// caller can print that command's usage.
pub struct ParseError {
    pub fail: Fail,
    pub command: Option<&'static Command>,
    pub json: bool,
}

impl Args {
    pub fn parse(raw: Vec<String>) -> Result<Args, ParseError> {
        // First pass: split words from options without judging the options yet, since
        // which flags are allowed depends on the command the words name.
        let mut words = Vec::new();
        let mut options: Vec<(String, Option<String>)> = Vec::new();
        let mut it = raw.into_iter();
        while let Some(x) = it.next() {
            if !(x.starts_with('-') && x.len() > 1) {
                words.push(x);
                continue;
            }
            if let Some((k, v)) = x.split_once('=').filter(|_| x.starts_with("--")) {
                options.push((k.to_string(), Some(v.to_string())));
            } else if is_switch(&x) || !takes_value(&x) {
                options.push((x, None));
            } else {
                // The last word may lack its value; judged below, as a flag without one.
                let v = it.next();
                options.push((x, v));
            }
        }
        let json = options.iter().any(|(k, v)| k == "--json" && v.is_none());
        let help = options.iter().any(|(k, _)| k == "--help" || k == "-h");
        let command = find_command(&words);
        let err = |m: String, command| ParseError {
            fail: Fail::usage(m),
            command,
            json,
        };
        // A misspelt option says so, even where it also hides the command's name.
        if let Some((k, _)) = options
            .iter()
            .find(|(k, _)| !takes_value(k) && !is_switch(k))
        {
            return Err(err(format!("unknown option {k}"), command));
        }
        let mut args = Args {
            command,
            help: help || words.first().is_some_and(|w| w == "help"),
            words: Vec::new(),
            flags: HashMap::new(),
            switches: Vec::new(),
        };
        match command {
            Some(c) => args.words = words[c.name.len()..].to_vec(),
            None if words.is_empty() || words[0] == "help" || help => {}
            None => {
                return Err(err(
                    format!("unknown command {:?}; run evctl help", words.join(" ")),
                    None,
                ))
            }
        }
        let command_flags = command.map(|c| c.flags).unwrap_or(&[]);
        let command_switches = command.map(|c| c.switches).unwrap_or(&[]);
        let what = command
            .map(|c| c.name.join(" "))
            .unwrap_or_else(|| "evctl".into());
        for (k, v) in options {
            let is_flag = GLOBAL_FLAGS.contains(&k.as_str()) || command_flags.contains(&k.as_str());
            let is_sw =
                GLOBAL_SWITCHES.contains(&k.as_str()) || command_switches.contains(&k.as_str());
            match v {
                Some(v) if is_flag => args.flags.entry(k).or_default().push(v),
                None if is_sw => args.switches.push(k),
                Some(_) if is_sw => return Err(err(format!("{k} takes no value"), command)),
                None if is_flag => return Err(err(format!("{k} needs a value"), command)),
                _ => return Err(err(format!("{what} does not take {k}"), command)),
            }
        }
        if let Some(max) = command.and_then(|c| c.max_words) {
            if args.words.len() > max {
                return Err(err(
                    format!("{what}: unexpected argument {:?}", args.words[max]),
                    command,
                ));
            }
        }
        Ok(args)
    }

    /// The last value of a flag.
    pub fn flag(&self, k: &str) -> Option<&str> {
        self.flags.get(k).and_then(|v| v.last()).map(String::as_str)
    }

    /// Every value of a repeatable flag, comma-separated lists split.
    pub fn all(&self, k: &str) -> Vec<String> {
        self.flags
            .get(k)
            .map(|v| {
                v.iter()
                    .flat_map(|x| x.split(','))
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn has(&self, k: &str) -> bool {
        self.switches.iter().any(|s| s == k)
    }

    /// A flag, else a non-empty environment variable, else the default.
    pub fn env_or(&self, k: &str, env: &str, default: &str) -> String {
        self.flag(k)
            .map(str::to_string)
            .or_else(|| std::env::var(env).ok().filter(|v| !v.is_empty()))
            .unwrap_or_else(|| default.to_string())
    }

    /// The i-th positional word after the command's name.
    pub fn word(&self, i: usize, what: &str) -> Result<&str, Fail> {
        self.words
            .get(i)
            .map(String::as_str)
            .ok_or_else(|| Fail::usage(format!("missing {what}")))
    }
}

/// The command whose name the words start with (the longest match).
fn find_command(words: &[String]) -> Option<&'static Command> {
    COMMANDS
        .iter()
        .filter(|c| c.name.len() <= words.len() && c.name.iter().zip(words).all(|(n, w)| n == w))
        .max_by_key(|c| c.name.len())
}

/// True for a flag some command (or every command) takes with a value.
fn takes_value(k: &str) -> bool {
    GLOBAL_FLAGS.contains(&k) || COMMANDS.iter().any(|c| c.flags.contains(&k))
}

fn is_switch(k: &str) -> bool {
    GLOBAL_SWITCHES.contains(&k) || COMMANDS.iter().any(|c| c.switches.contains(&k))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Args, String> {
        Args::parse(line.split_whitespace().map(str::to_string).collect())
            .map_err(|e| e.fail.message)
    }

    #[test]
    fn every_command_usage_is_in_the_usage_text() {
        for c in COMMANDS {
            assert!(crate::usage::USAGE.contains(c.usage), "{:?}", c.name);
        }
    }

    #[test]
    fn options_go_before_or_after_the_command() {
        let a = parse("--tenant acme history Loan L-1 --json").unwrap();
        assert_eq!(a.command.unwrap().name, ["history"]);
        assert_eq!(a.words, ["Loan", "L-1"]);
        assert_eq!(a.flag("--tenant"), Some("acme"));
        assert!(a.has("--json"));
        let a = parse("publish --type=Loan.Created --version 2").unwrap();
        assert_eq!(
            (a.flag("--type"), a.flag("--version")),
            (Some("Loan.Created"), Some("2"))
        );
        // A later global option wins (a script's default, overridden on the line).
        let a = parse("--api http://a trace c-1 --api http://b").unwrap();
        assert_eq!(a.flag("--api"), Some("http://b"));
        let a = parse("handler disable notifications --principal alice").unwrap();
        assert_eq!(
            (a.words.as_slice(), a.flag("--principal")),
            (["notifications".to_string()].as_slice(), Some("alice"))
        );
        let a = parse("dlq redrive --event a,b --event c --all").unwrap();
        assert_eq!(a.all("--event"), ["a", "b", "c"]);
    }

    #[test]
    fn unknown_misplaced_and_incomplete_options_are_refused() {
        for (line, says) in [
            ("publish --type T --verison 2", "unknown option --verison"),
            ("history Loan L-1 --type X", "history does not take --type"),
            ("trace c-1 --yes", "trace does not take --yes"),
            ("dlq list --all", "dlq list does not take --all"),
            // Only the commands that record an action name its principal.
            (
                "dlq list --principal p",
                "dlq list does not take --principal",
            ),
            ("publish --principal p", "publish does not take --principal"),
            ("publish --type", "--type needs a value"),
            ("publish --json=1", "--json takes no value"),
            ("history Loan L-1 extra", "unexpected argument \"extra\""),
            ("frobnicate", "unknown command"),
            ("dlq frob", "unknown command"),
            ("events -x", "unknown option -x"),
        ] {
            let e = parse(line).err().unwrap_or_else(|| panic!("{line} parsed"));
            assert!(e.contains(says), "{line}: {e}");
        }
    }

    #[test]
    fn help_is_asked_for_and_no_command_is_not() {
        for line in ["help", "--help", "-h", "publish --help", "--tenant t help"] {
            assert!(parse(line).unwrap().help, "{line}");
        }
        let bare = parse("--tenant t").unwrap();
        assert!(bare.command.is_none() && !bare.help);
    }
}
