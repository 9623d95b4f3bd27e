//! `views`: the `calls`, `events` and `inits` views and fantrace's decoding functions as SQL
//! for another engine (DuckDB, Spark SQL), so a capture can be queried there with the same
//! names and answers. Generated from the schema's tables, like the analyzer's own functions:
//! nothing here names a flag or a column by hand.
use fantrace_schema::arrow::{COLUMNS, DERIVED};
use fantrace_schema::decode::{MARK_ACTION_NAMES, init_class, mark_type};
use fantrace_schema::errno::ERRNO_NAMES;
use fantrace_schema::flags::{
    INIT_CLASS_BITS, INIT_CLASSES, INIT_FLAGS, MARK_FLAGS, MARK_TYPE_BITS, MARK_TYPES, MASK_BITS,
    Name,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Engine {
    Duckdb,
    Spark,
}

#[derive(clap::Args, Debug)]
pub struct ViewsArgs {
    /// The engine whose SQL to print.
    #[arg(long, value_enum)]
    pub engine: Engine,
    /// The capture's segment files as that engine reads them: a glob, a directory, or an
    /// object-store URL.
    #[arg(long, default_value = "capture/*.parquet")]
    pub path: String,
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// An unsigned 64-bit value as the engine does bit arithmetic on it.
fn unsigned(engine: Engine, expr: &str) -> String {
    match engine {
        Engine::Duckdb => format!("CAST({expr} AS UBIGINT)"),
        // Spark reads UINT64 as DECIMAL(20,0) and has no unsigned type: every fanotify bit
        // is below 2^63, so BIGINT holds them.
        Engine::Spark => format!("CAST({expr} AS BIGINT)"),
    }
}

fn literal(engine: Engine, v: u64) -> String {
    match engine {
        Engine::Duckdb => format!("CAST({v} AS UBIGINT)"),
        Engine::Spark => format!("CAST({} AS BIGINT)", v as i64),
    }
}

/// The names of the bits of `value` set in `table`, then the unknown rest as one hex value:
/// `fantrace_schema::flags::for_each_bit_name` in SQL.
fn bit_list(engine: Engine, value: &str, table: &[Name], ignore: u64) -> String {
    let v = unsigned(engine, value);
    let known = table.iter().fold(ignore, |acc, n| acc | n.value);
    let entries: Vec<String> = table
        .iter()
        .filter(|n| n.value != 0)
        .map(|n| match engine {
            Engine::Duckdb => format!(
                "{{'n': {}, 'b': {}}}",
                quote(n.name),
                literal(engine, n.value)
            ),
            Engine::Spark => format!(
                "named_struct('n', {}, 'b', {})",
                quote(n.name),
                literal(engine, n.value)
            ),
        })
        .collect();
    let rest = format!("({v} & {})", literal(engine, !known));
    match engine {
        Engine::Duckdb => format!(
            "(list_transform(list_filter([{}], lambda x: ({v} & x.b) = x.b), lambda x: x.n) || \
             CASE WHEN {rest} <> 0 THEN [printf('%#x', {rest})] ELSE []::VARCHAR[] END)",
            entries.join(", ")
        ),
        Engine::Spark => format!(
            "concat(transform(filter(array({}), x -> ({v} & x.b) = x.b), x -> x.n), \
             CASE WHEN {rest} <> 0 THEN array(concat('0x', lower(hex({rest})))) \
             ELSE CAST(array() AS ARRAY<STRING>) END)",
            entries.join(", ")
        ),
    }
}

fn join(engine: Engine, list: &str) -> String {
    match engine {
        Engine::Duckdb => format!("array_to_string({list}, '|')"),
        Engine::Spark => format!("array_join({list}, '|')"),
    }
}

/// `'0'` for an empty list joined, as the analyzer prints an empty mask.
fn join_or_zero(engine: Engine, list: &str) -> String {
    let joined = join(engine, list);
    format!("CASE WHEN {joined} = '' THEN '0' ELSE {joined} END")
}

fn field_name(engine: Engine, value: &str, mask: u64, names: &[Name], fallback: &str) -> String {
    let v = unsigned(engine, value);
    let arms: Vec<String> = names
        .iter()
        .map(|n| format!("WHEN {} THEN {}", literal(engine, n.value), quote(n.name)))
        .collect();
    format!(
        "CASE ({v} & {}) {} ELSE {fallback} END",
        literal(engine, mask),
        arms.join(" ")
    )
}

/// Every decoding function the analyzer registers, as SQL over `value`.
fn function(engine: Engine, name: &str, value: &str) -> Option<String> {
    let v = unsigned(engine, value);
    Some(match name {
        "fan_flag_list" => bit_list(engine, value, MARK_FLAGS, MARK_TYPE_BITS),
        "fan_mask_list" => bit_list(engine, value, MASK_BITS, 0),
        "fan_mark_type" => {
            let short: Vec<Name> = MARK_TYPES
                .iter()
                .map(|n| Name {
                    name: mark_type(n.value),
                    ..*n
                })
                .collect();
            field_name(engine, value, MARK_TYPE_BITS, &short, "'inode'")
        }
        "fan_mark_action" => {
            // decode::mark_action_index in SQL.
            let index = format!(
                "(({v} & {one}) + ({v} & {two}) + CASE WHEN ({v} & {flush}) <> 0 THEN 4 ELSE 0 END)",
                one = literal(engine, 1),
                two = literal(engine, 2),
                flush = literal(engine, 0x80)
            );
            let arms: Vec<String> = MARK_ACTION_NAMES
                .iter()
                .enumerate()
                .map(|(i, n)| format!("WHEN {i} THEN {}", quote(n)))
                .collect();
            format!("CASE CAST({index} AS INT) {} END", arms.join(" "))
        }
        "fan_flag_names" => {
            let list = bit_list(engine, value, MARK_FLAGS, MARK_TYPE_BITS);
            let kind = field_name(
                engine,
                value,
                MARK_TYPE_BITS,
                MARK_TYPES,
                "'FAN_MARK_INODE'",
            );
            let with_type = match engine {
                Engine::Duckdb => format!(
                    "{list} || CASE WHEN ({v} & {t}) <> 0 THEN [{kind}] ELSE []::VARCHAR[] END",
                    t = literal(engine, MARK_TYPE_BITS)
                ),
                Engine::Spark => format!(
                    "concat({list}, CASE WHEN ({v} & {t}) <> 0 THEN array({kind}) ELSE \
                     CAST(array() AS ARRAY<STRING>) END)",
                    t = literal(engine, MARK_TYPE_BITS)
                ),
            };
            join_or_zero(engine, &format!("({with_type})"))
        }
        "fan_mask_names" => join_or_zero(engine, &bit_list(engine, value, MASK_BITS, 0)),
        "fan_init_class" => {
            let short: Vec<Name> = INIT_CLASSES
                .iter()
                .map(|n| Name {
                    name: init_class(n.value),
                    ..*n
                })
                .collect();
            field_name(engine, value, INIT_CLASS_BITS, &short, "'invalid'")
        }
        "fan_init_flag_names" => {
            let hex_class = match engine {
                Engine::Duckdb => {
                    format!("printf('%#x', {v} & {})", literal(engine, INIT_CLASS_BITS))
                }
                Engine::Spark => format!(
                    "concat('0x', lower(hex({v} & {})))",
                    literal(engine, INIT_CLASS_BITS)
                ),
            };
            let class = field_name(engine, value, INIT_CLASS_BITS, INIT_CLASSES, &hex_class);
            let rest = join(
                engine,
                &bit_list(engine, value, INIT_FLAGS, INIT_CLASS_BITS),
            );
            format!("CASE WHEN {rest} = '' THEN {class} ELSE concat({class}, '|', {rest}) END")
        }
        "errno_name" => {
            let arms: Vec<String> = ERRNO_NAMES
                .iter()
                .map(|(n, name)| format!("WHEN {n} THEN {}", quote(name)))
                .collect();
            format!(
                "CASE WHEN {value} >= 0 THEN NULL ELSE CASE -{value} {} ELSE concat('errno ', \
                 CAST(-{value} AS VARCHAR)) END END",
                arms.join(" ")
            )
            .replace(
                "VARCHAR",
                if engine == Engine::Spark {
                    "STRING"
                } else {
                    "VARCHAR"
                },
            )
        }
        _ => return None,
    })
}

/// The analyzer's decoding functions that [`function`] writes as SQL.
const FUNCTIONS: [&str; 9] = [
    "fan_flag_names",
    "fan_mask_names",
    "fan_flag_list",
    "fan_mask_list",
    "fan_mark_action",
    "fan_mark_type",
    "fan_init_flag_names",
    "fan_init_class",
    "errno_name",
];

/// Replaces every `name(arg)` call of a decoding function in `sql` by its SQL.
fn expand(engine: Engine, sql: &str) -> String {
    let mut out = sql.to_string();
    for name in FUNCTIONS {
        while let Some(at) = out.find(&format!("{name}(")) {
            let open = at + name.len();
            let close = match out[open..].find(')') {
                Some(c) => open + c,
                None => break,
            };
            let arg = out[open + 1..close].to_string();
            let body = function(engine, name, &arg).unwrap_or_default();
            out.replace_range(at..=close, &format!("({body})"));
        }
    }
    out
}

/// The statements that make `calls`, `events` and `inits` in `engine`.
pub fn statements(engine: Engine, path: &str) -> Vec<String> {
    let mut out = Vec::new();
    match engine {
        Engine::Duckdb => {
            out.push(format!(
                "CREATE OR REPLACE VIEW calls AS SELECT * FROM read_parquet({}, union_by_name = true)",
                quote(path)
            ));
            for name in FUNCTIONS {
                if let Some(body) = function(engine, name, "v") {
                    out.push(format!("CREATE OR REPLACE MACRO {name}(v) AS ({body})"));
                }
            }
        }
        Engine::Spark => {
            out.push(format!(
                "CREATE OR REPLACE TEMPORARY VIEW calls_stored USING parquet OPTIONS (path {})",
                quote(path)
            ));
            // With spark.sql.legacy.parquet.nanosAsLong, `time` arrives as nanoseconds.
            let columns: Vec<String> = COLUMNS
                .iter()
                .map(|c| match c.name {
                    "time" => "timestamp_micros(div(time, 1000)) AS time".to_string(),
                    other => other.to_string(),
                })
                .collect();
            out.push(format!(
                "CREATE OR REPLACE TEMPORARY VIEW calls AS SELECT {} FROM calls_stored",
                columns.join(", ")
            ));
        }
    }
    let stored: Vec<String> = COLUMNS
        .iter()
        .filter(|c| c.name != "syscall")
        .map(|c| c.name.to_string())
        .collect();
    let derived: Vec<String> = DERIVED
        .iter()
        .map(|d| format!("{} AS {}", expand(engine, d.sql), d.name))
        .collect();
    let create = match engine {
        Engine::Duckdb => "CREATE OR REPLACE VIEW",
        Engine::Spark => "CREATE OR REPLACE TEMPORARY VIEW",
    };
    out.push(format!(
        "{create} events AS SELECT {}, {} FROM calls WHERE syscall = 'fanotify_mark'",
        stored.join(", "),
        derived.join(", ")
    ));
    let inits = fantrace_engine::session::INITS_COLUMNS;
    let inits = match engine {
        Engine::Duckdb => inits.replace("arrow_cast(mask, 'UInt32')", "CAST(mask AS UINTEGER)"),
        Engine::Spark => inits.replace("arrow_cast(mask, 'UInt32')", "CAST(mask AS BIGINT)"),
    };
    out.push(format!(
        "{create} inits AS SELECT {} FROM calls WHERE syscall = 'fanotify_init'",
        expand(engine, &inits)
    ));
    out
}

pub fn run(args: &ViewsArgs) {
    match args.engine {
        Engine::Duckdb => println!(
            "-- fantrace views for DuckDB: run this in duckdb, then query events, inits, calls."
        ),
        Engine::Spark => println!(
            "-- fantrace views for Spark SQL. Spark cannot read nanosecond timestamps unless told\n\
             -- to take them as numbers: SET spark.sql.legacy.parquet.nanosAsLong = true (or\n\
             -- --conf spark.sql.legacy.parquet.nanosAsLong=true) before running these."
        ),
    }
    for s in statements(args.engine, &args.path) {
        println!("{s};");
    }
}
