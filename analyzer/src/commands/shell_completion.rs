//! Tab completion for the shell: table, column and function names of the open session, and
//! the SQL keywords people type most.
use rustyline::completion::{Completer, Pair};
use rustyline::{Context, Helper, Highlighter, Hinter, Validator};

const KEYWORDS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP BY",
    "ORDER BY",
    "HAVING",
    "LIMIT",
    "DISTINCT",
    "COUNT",
    "AND",
    "OR",
    "NOT",
    "IN",
    "LIKE",
    "IS NULL",
    "IS NOT NULL",
    "BETWEEN",
    "JOIN",
    "ON",
    "AS",
    "DESC",
    "ASC",
    "WITH",
    "UNION ALL",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "EXPLAIN ANALYZE",
];

#[derive(Helper, Hinter, Highlighter, Validator)]
pub struct SqlHelper {
    words: Vec<String>,
}

impl SqlHelper {
    /// `names`: tables, columns and functions of the session.
    pub fn new(names: impl IntoIterator<Item = String>) -> SqlHelper {
        let mut words: Vec<String> = names.into_iter().collect();
        words.extend(KEYWORDS.iter().map(|k| k.to_string()));
        words.sort();
        words.dedup();
        SqlHelper { words }
    }

    /// The candidates for the word ending at `pos`, and where that word starts.
    pub fn candidates(&self, line: &str, pos: usize) -> (usize, Vec<String>) {
        let start = line[..pos]
            .rfind(|c: char| !(c.is_alphanumeric() || c == '_'))
            .map_or(0, |i| i + 1);
        let prefix = line[start..pos].to_ascii_lowercase();
        if prefix.is_empty() {
            return (start, Vec::new());
        }
        let found = self
            .words
            .iter()
            .filter(|w| w.to_ascii_lowercase().starts_with(&prefix))
            .cloned()
            .collect();
        (start, found)
    }
}

impl Completer for SqlHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let (start, words) = self.candidates(line, pos);
        let pairs = words
            .into_iter()
            .map(|w| Pair {
                display: w.clone(),
                replacement: w,
            })
            .collect();
        Ok((start, pairs))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn completes_names_and_keywords() {
        let h = super::SqlHelper::new(["events".to_string(), "fan_mask_names".to_string()]);
        assert_eq!(
            h.candidates("SELECT * FROM ev", 16),
            (14, vec!["events".to_string()])
        );
        assert_eq!(
            h.candidates("SELECT fan_m", 12).1,
            vec!["fan_mask_names".to_string()]
        );
        assert!(h.candidates("sel", 3).1.contains(&"SELECT".to_string()));
        assert!(h.candidates("SELECT ", 7).1.is_empty());
    }
}
