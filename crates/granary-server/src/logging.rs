//! Log output: to stderr, as text (coloured only when stderr is a terminal) or as JSON lines
//! for log collectors (`--log-format`, `GRANARY_LOG_FORMAT`, `log_format`).

use std::io::IsTerminal as _;
use std::str::FromStr;

use serde::Deserialize;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines; ANSI colours only when stderr is a terminal.
    #[default]
    Text,
    /// One JSON object a line (`timestamp`, `level`, `fields`, `target`, `spans`).
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!(
                "`{other}` is not a log format: use `text` or `json`"
            )),
        }
    }
}

/// Installs the process's log subscriber: `filter` as `GRANARY_LOG` takes it (an invalid
/// filter falls back to `info` and says so), written in `format` to stderr.
pub fn init(filter: &str, format: LogFormat) {
    let (filter, invalid) = match tracing_subscriber::EnvFilter::try_new(filter) {
        Ok(filter) => (filter, None),
        Err(error) => (tracing_subscriber::EnvFilter::new("info"), Some(error)),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
    };
    if installed.is_ok()
        && let Some(error) = invalid
    {
        tracing::warn!(%error, "the log filter is not valid: logging at info instead");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_by_name() {
        assert_eq!("json".parse(), Ok(LogFormat::Json));
        assert_eq!(" Text ".parse(), Ok(LogFormat::Text));
        let refused = "yaml".parse::<LogFormat>().unwrap_err();
        assert!(
            refused.contains("text") && refused.contains("json"),
            "{refused}"
        );
    }
}
