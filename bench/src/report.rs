//! The one table the bench prints: each figure with our value, the peer's, their ratio and
//! the target, as Markdown so a run pastes straight into the README.
use std::fmt::Write as _;

pub struct Row {
    pub figure: String,
    pub ours: String,
    pub peer: String,
    pub ratio: String,
    pub target: String,
    /// None when the figure has no target of its own (a per-query detail row).
    pub met: Option<bool>,
}

impl Row {
    pub fn new(figure: impl Into<String>, ours: impl Into<String>) -> Row {
        Row {
            figure: figure.into(),
            ours: ours.into(),
            peer: "—".into(),
            ratio: "—".into(),
            target: "—".into(),
            met: None,
        }
    }

    pub fn peer(mut self, peer: impl Into<String>, ratio: Option<f64>) -> Row {
        self.peer = peer.into();
        if let Some(r) = ratio.filter(|r| r.is_finite()) {
            self.ratio = format!("{r:.2}");
        }
        self
    }

    pub fn target(mut self, target: impl Into<String>, met: bool) -> Row {
        self.target = target.into();
        self.met = Some(met);
        self
    }
}

pub fn markdown(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| figure | fantrace | peer | fantrace / peer | target | met |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for r in rows {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            r.figure, r.ours, r.peer, r.ratio, r.target, met
        );
    }
    out
}

/// 12345678 -> "12,345,678".
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(12_345_678), "12,345,678");
    }

    #[test]
    fn table_marks_missed_targets() {
        let rows = [
            Row::new("a", "1").target("≤ 2", true),
            Row::new("b", "3")
                .peer("p 6", Some(0.5))
                .target("≤ 2", false),
            Row::new("c", "4"),
        ];
        let t = markdown(&rows);
        assert!(t.contains("| a | 1 | — | — | ≤ 2 | yes |"));
        assert!(t.contains("| b | 3 | p 6 | 0.50 | ≤ 2 | **no** |"));
        assert!(t.contains("| c | 4 | — | — | — |  |"));
    }
}
