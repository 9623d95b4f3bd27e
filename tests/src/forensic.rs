//! The five forensic queries a responder runs first on a large capture: the benchmark times
//! them against DuckDB, and the fleet test checks a cluster gives the local answers to them.
use fantrace_schema::flags::PERMISSION_MASK;

pub struct Query {
    pub name: &'static str,
    pub sql: String,
}

/// The queries a responder runs first on a large capture. The synthetic capture spans
/// 2026-11-01 (see `synth::T0`).
pub fn forensic() -> Vec<Query> {
    vec![
        Query {
            name: "time range (1 minute of 24 h)",
            sql: "SELECT comm, count(*) AS calls FROM events \
                  WHERE time >= '2026-11-01T10:00:00Z' AND time < '2026-11-01T10:01:00Z' \
                  GROUP BY comm ORDER BY calls DESC, comm"
                .into(),
        },
        Query {
            name: "by process and mark type",
            sql: "SELECT comm, mark_type, count(*) AS calls FROM events \
                  GROUP BY comm, mark_type ORDER BY calls DESC, comm, mark_type"
                .into(),
        },
        Query {
            name: "path prefix /etc/",
            sql: "SELECT comm, count(DISTINCT pathname) AS paths FROM events \
                  WHERE pathname LIKE '/etc/%' GROUP BY comm ORDER BY paths DESC, comm"
                .into(),
        },
        Query {
            name: "permission-event marks",
            // The mask bits come from the schema's table, the same the analyzer decodes with.
            sql: format!(
                "SELECT pid, comm, count(*) AS marks FROM events \
                 WHERE (mask & {PERMISSION_MASK}) <> 0 AND ret = 0 AND mark_action = 'add' \
                 GROUP BY pid, comm ORDER BY marks DESC, pid LIMIT 20"
            ),
        },
        Query {
            name: "top failing processes",
            sql: "SELECT pid, comm, count(*) AS failures FROM events WHERE ret < 0 \
                  GROUP BY pid, comm ORDER BY failures DESC, pid LIMIT 10"
                .into(),
        },
    ]
}
