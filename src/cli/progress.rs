//! One progress-bar style for every long command: on stderr, only when it is
//! a terminal, drawn from the first unit of work on (no 0/0 flash), with the
//! count in the unit users think in (toys, refits) and a smoothed ETA.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

/// A bar of `len` units named `unit`, labelled `label`; `None` off a terminal.
pub fn bar(len: u64, unit: &str, label: &str) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let template = format!("{{msg}} [{{bar:40}}] {{pos}}/{{len}} {unit} {{elapsed}} (eta {{eta}})");
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template(&template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_message(label.to_string());
    Some(pb)
}

/// A POI value for a label: at most 4 decimals, trailing zeros dropped
/// (`0.30000000000000004` reads `0.3`).
pub fn short(x: f64) -> String {
    let s = format!("{x:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

#[cfg(test)]
mod tests {
    #[test]
    fn short_numbers() {
        assert_eq!(super::short(0.30000000000000004), "0.3");
        assert_eq!(super::short(2.0), "2");
        assert_eq!(super::short(1.23456), "1.2346");
        assert_eq!(super::short(-0.00001), "0");
    }
}
