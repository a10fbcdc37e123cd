//! The one error type of evctl: what went wrong, and the exit code it ends with.

use event_adapters::AdapterError;
use serde_json::Value;

/// Why a command failed; each kind is one exit code (the "Exit codes" of the usage text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Whoever read stdout has gone (`| head -1`): stop quietly, exit 0.
    OutputClosed,
    /// The API or AWS refused (4xx/5xx, an AWS error): exit 1.
    Refused,
    /// The command line is wrong: exit 2.
    Usage,
    /// 404, an unknown queue, handler or domain: exit 3.
    NotFound,
    /// The API or AWS cannot be reached (or stdout cannot be written): exit 4.
    Unreachable,
    /// A destructive command without `--yes`: exit 5.
    ConfirmationRequired,
}

impl Kind {
    pub fn exit_code(self) -> u8 {
        match self {
            Kind::OutputClosed => 0,
            Kind::Refused => 1,
            Kind::Usage => 2,
            Kind::NotFound => 3,
            Kind::Unreachable => 4,
            Kind::ConfirmationRequired => 5,
        }
    }
}

/// A failure with its kind.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Fail {
    pub kind: Kind,
    pub message: String,
    /// The API's error body, printed with --json.
    pub body: Option<Value>,
}

impl Fail {
    pub fn new(kind: Kind, m: impl Into<String>) -> Fail {
        Fail {
            kind,
            message: m.into(),
            body: None,
        }
    }

    pub fn usage(m: impl Into<String>) -> Fail {
        Fail::new(Kind::Usage, m)
    }

    pub fn not_found(m: impl Into<String>) -> Fail {
        Fail::new(Kind::NotFound, m)
    }

    pub fn unreachable(m: impl Into<String>) -> Fail {
        Fail::new(Kind::Unreachable, m)
    }

    /// Whoever read stdout has gone (`| head -1`): stop, say nothing, exit 0.
    pub fn output_closed() -> Fail {
        Fail::new(Kind::OutputClosed, "")
    }

    pub fn is_output_closed(&self) -> bool {
        self.kind == Kind::OutputClosed
    }
}

impl From<AdapterError> for Fail {
    fn from(e: AdapterError) -> Fail {
        let m = e.to_string();
        if let Some(cause) = m.split_once("dispatch failure: ").map(|(_, c)| c) {
            // The SDK appends its error's debug dump; the sentence before it says enough.
            let cause = cause.split(" (DispatchFailure(").next().unwrap_or(cause);
            let at = std::env::var("AWS_ENDPOINT_URL")
                .map(|u| format!(" at {u}"))
                .unwrap_or_default();
            return Fail::unreachable(format!("cannot reach AWS{at}: {cause}"));
        }
        let kind = if e.is_transient() {
            Kind::Unreachable
        } else if m.contains("NonExistentQueue")
            || m.contains("ResourceNotFound")
            || m.contains("QueueDoesNotExist")
        {
            Kind::NotFound
        } else {
            Kind::Refused
        };
        Fail::new(kind, m)
    }
}

/// What every command returns.
pub type Res<T> = Result<T, Fail>;
