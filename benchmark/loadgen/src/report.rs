//! The one-line JSON result and the percentile helper.

/// A measurement, printed as one JSON line.
pub struct Outcome {
    /// The headline number (messages/s or deliveries/s); NaN when there is none.
    pub value: f64,
    /// Median latency or completion time, in µs.
    pub p50: Option<f64>,
    /// 99th percentile latency or completion time, in µs.
    pub p99: Option<f64>,
    /// Whether every message arrived and checked out.
    pub complete: bool,
    /// What went wrong or what is worth knowing; empty when nothing.
    pub note: String,
}

impl Outcome {
    /// The result of a run that could not be set up.
    pub fn failed(note: String) -> Self {
        Outcome { value: f64::NAN, p50: None, p99: None, complete: false, note }
    }

    /// Writes the JSON line to stdout.
    pub fn print(&self) {
        println!(
            "{{\"value\":{},\"p50\":{},\"p99\":{},\"complete\":{},\"note\":\"{}\"}}",
            num(Some(self.value)),
            num(self.p50),
            num(self.p99),
            self.complete,
            escape(&self.note)
        );
    }
}

fn num(x: Option<f64>) -> String {
    match x {
        Some(v) if v.is_finite() => format!("{v:.1}"),
        _ => "null".into(),
    }
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The q-quantile (0..=1) of an ascending slice, nearest rank; None when empty.
pub fn percentile(sorted: &[u64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted.get(rank - 1).map(|&v| v as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), Some(50.0));
        assert_eq!(percentile(&v, 0.99), Some(99.0));
        assert_eq!(percentile(&[7], 0.99), Some(7.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn notes_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c d");
    }
}
