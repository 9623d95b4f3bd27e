//! DataFusion's functions whose result can be far larger than their arguments (`repeat`,
//! `lpad`, `replace`, `array_repeat`, `range`, ...), refused before they build a result that
//! would not fit the memory limit.
//!
//! The engine's memory pool counts what operators hold (sorts, joins, aggregations), not what
//! a scalar function allocates while computing one batch: `repeat('x', 1000000000)` over three
//! rows took 3.9 GiB under `--memory-limit 200M`. Each function here keeps DataFusion's own
//! behaviour and only adds an upper bound on its result's size, computed from its arguments
//! before it runs.
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray as _};
use arrow::compute::kernels::length::length;
use arrow::datatypes::{DataType, FieldRef, Int64Type};
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::FunctionRegistry as _;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature,
};
use datafusion::prelude::{Expr, SessionContext};

/// How a function's result grows: an upper bound on its size in bytes for `rows` rows.
type Estimate = fn(&[ColumnarValue], usize) -> Result<u64>;

const BOUNDED: [(&str, Estimate); 9] = [
    ("repeat", |a, n| {
        let (text, times) = (lengths(a.first(), n)?, ints(arg(a, 1)?, n)?);
        Ok((0..n)
            .map(|i| text[i].saturating_mul(times[i].unwrap_or(0).max(0) as u64))
            .fold(0, u64::saturating_add))
    }),
    ("lpad", pad),
    ("rpad", pad),
    ("replace", |a, n| {
        // Every occurrence of `from` (at most len/|from| + 1 of them) may become `to`.
        sum3(a, n, |s, from, to| s + (s / from.max(1) + 1) * to)
    }),
    ("regexp_replace", |a, n| {
        // A pattern matching the empty string replaces between every two bytes.
        sum3(a, n, |s, _, rep| s + (s + 1) * rep)
    }),
    ("array_repeat", |a, n| {
        let each = element_bytes(a.first(), n);
        Ok(sum_ints(a.get(1), n)?.saturating_mul(each))
    }),
    ("array_resize", |a, n| {
        let each = element_bytes(a.get(2), n).max(8);
        Ok(sum_ints(a.get(1), n)?.saturating_mul(each))
    }),
    ("range", series),
    ("generate_series", series),
];

/// Replaces DataFusion's functions named in [`BOUNDED`] by bounded ones: a call whose result
/// would pass `budget` bytes in one batch fails with an error saying so.
pub fn register(ctx: &SessionContext, memory_limit: usize) {
    for udf in wrap(|name| ctx.udf(name).ok(), memory_limit) {
        ctx.register_udf(udf);
    }
}

/// The bounded versions of the functions `builtin` finds by name, under `memory_limit`.
pub fn wrap(
    builtin: impl Fn(&str) -> Option<Arc<ScalarUDF>>,
    memory_limit: usize,
) -> Vec<ScalarUDF> {
    let budget = (memory_limit / 4) as u64;
    BOUNDED
        .iter()
        .filter_map(|&(name, estimate)| {
            builtin(name).map(|inner| {
                ScalarUDF::new_from_impl(Bounded {
                    inner,
                    estimate,
                    budget,
                    memory_limit: memory_limit as u64,
                })
            })
        })
        .collect()
}

/// `lpad`/`rpad(text, n [, fill])`: `n` characters of up to four bytes each.
fn pad(args: &[ColumnarValue], rows: usize) -> Result<u64> {
    Ok(sum_ints(args.get(1), rows)?.saturating_mul(4) + sum_lengths(args.first(), rows)?)
}

/// `range`/`generate_series(start, stop [, step])` over integers: eight bytes a value. Over
/// dates and timestamps the step is an interval; those are left unbounded here.
fn series(args: &[ColumnarValue], rows: usize) -> Result<u64> {
    if args.len() < 2 || !args.iter().all(|a| a.data_type().is_integer()) {
        return Ok(0);
    }
    let start = ints(&args[0], rows)?;
    let stop = ints(&args[1], rows)?;
    let step = match args.get(2) {
        Some(a) => ints(a, rows)?,
        None => vec![Some(1); rows],
    };
    let mut total = 0u64;
    for i in 0..rows {
        if let (Some(a), Some(b), Some(s)) = (start[i], stop[i], step[i]) {
            let span = (i128::from(b) - i128::from(a)).unsigned_abs();
            let count = span / i128::from(s).unsigned_abs().max(1) + 1;
            total =
                total.saturating_add(u64::try_from(count.saturating_mul(8)).unwrap_or(u64::MAX));
        }
    }
    Ok(total)
}

fn sum3(args: &[ColumnarValue], rows: usize, f: fn(u64, u64, u64) -> u64) -> Result<u64> {
    let (a, b, c) = (
        lengths(args.first(), rows)?,
        lengths(args.get(1), rows)?,
        lengths(args.get(2), rows)?,
    );
    Ok((0..rows)
        .map(|i| f(a[i], b[i], c[i]))
        .fold(0, u64::saturating_add))
}

fn sum_lengths(arg: Option<&ColumnarValue>, rows: usize) -> Result<u64> {
    Ok(lengths(arg, rows)?.into_iter().fold(0, u64::saturating_add))
}

fn sum_ints(arg: Option<&ColumnarValue>, rows: usize) -> Result<u64> {
    let Some(arg) = arg else { return Ok(0) };
    Ok(ints(arg, rows)?
        .into_iter()
        .map(|v| v.unwrap_or(0).max(0) as u64)
        .fold(0, u64::saturating_add))
}

fn arg(args: &[ColumnarValue], i: usize) -> Result<&ColumnarValue> {
    args.get(i)
        .ok_or_else(|| DataFusionError::Plan(format!("argument {} is missing", i + 1)))
}

fn to_array(arg: &ColumnarValue, rows: usize) -> Result<ArrayRef> {
    arg.to_array(match arg {
        ColumnarValue::Scalar(_) => 1,
        ColumnarValue::Array(_) => rows,
    })
}

/// Per row, the value of an integer argument (a scalar applies to every row).
fn ints(arg: &ColumnarValue, rows: usize) -> Result<Vec<Option<i64>>> {
    if !arg.data_type().is_integer() {
        return Ok(vec![None; rows]);
    }
    let array = arrow::compute::cast(&to_array(arg, rows)?, &DataType::Int64)?;
    let values = array.as_primitive::<Int64Type>();
    Ok((0..rows)
        .map(|i| {
            let i = if values.len() == 1 { 0 } else { i };
            values.is_valid(i).then(|| values.value(i))
        })
        .collect())
}

/// Per row, the byte length of a text or binary argument (0 for others and NULLs).
fn lengths(arg: Option<&ColumnarValue>, rows: usize) -> Result<Vec<u64>> {
    let Some(arg) = arg else {
        return Ok(vec![0; rows]);
    };
    let array = to_array(arg, rows)?;
    let Ok(lens) = length(&array) else {
        return Ok(vec![0; rows]);
    };
    let lens = arrow::compute::cast(&lens, &DataType::Int64)?;
    let lens = lens.as_primitive::<Int64Type>();
    Ok((0..rows)
        .map(|i| {
            let i = if lens.len() == 1 { 0 } else { i };
            if lens.is_valid(i) {
                lens.value(i).max(0) as u64
            } else {
                0
            }
        })
        .collect())
}

/// About how many bytes one value of `arg` takes.
fn element_bytes(arg: Option<&ColumnarValue>, rows: usize) -> u64 {
    match arg {
        Some(ColumnarValue::Scalar(s)) => s.size() as u64,
        Some(ColumnarValue::Array(a)) => (a.get_array_memory_size() / rows.max(1)) as u64 + 8,
        None => 8,
    }
}

#[derive(Debug)]
struct Bounded {
    inner: Arc<ScalarUDF>,
    estimate: Estimate,
    budget: u64,
    memory_limit: u64,
}

impl PartialEq for Bounded {
    fn eq(&self, other: &Self) -> bool {
        self.inner == other.inner && self.budget == other.budget
    }
}

impl Eq for Bounded {}

impl std::hash::Hash for Bounded {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.inner.hash(state);
        self.budget.hash(state);
    }
}

impl ScalarUDFImpl for Bounded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let bytes = (self.estimate)(&args.args, args.number_rows)?;
        if bytes > self.budget {
            return Err(DataFusionError::ResourcesExhausted(format!(
                "{}() would build a result of {} in one batch of {} row(s), more than a \
                 quarter of --memory-limit {} allows; ask for less, or raise --memory-limit",
                self.name(),
                human_bytes(bytes),
                args.number_rows,
                human_bytes(self.memory_limit)
            )));
        }
        self.inner.invoke_with_args(args)
    }

    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        self.inner.simplify(args, info)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use datafusion::execution::runtime_env::RuntimeEnvBuilder;
    use datafusion::prelude::SessionContext;

    async fn run(ctx: &SessionContext, sql: &str) -> Result<String, String> {
        let df = ctx.sql(sql).await.map_err(|e| e.to_string())?;
        let batches = df.collect().await.map_err(|e| e.to_string())?;
        Ok(arrow::util::pretty::pretty_format_batches(&batches)
            .map_err(|e| e.to_string())?
            .to_string())
    }

    fn session(limit: usize) -> SessionContext {
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(limit, 1.0)
            .build_arc()
            .unwrap();
        let ctx = SessionContext::new_with_config_rt(Default::default(), runtime);
        super::register(&ctx, limit);
        ctx
    }

    #[tokio::test]
    async fn growing_functions_are_refused_past_the_budget_and_work_below_it() {
        let ctx = session(200 << 20);
        for sql in [
            "SELECT sum(length(repeat('x', 1000000000))) FROM generate_series(1, 3)",
            "SELECT sum(length(lpad('x', 100000000))) FROM generate_series(1, 3)",
            "SELECT length(rpad('x', 100000000, 'ab'))",
            "SELECT length(replace(repeat('x', 10000), 'x', repeat('y', 10000)))",
            "SELECT length(regexp_replace(repeat('x', 10000), '', repeat('y', 10000), 'g'))",
            "SELECT cardinality(array_repeat(1, 100000000))",
            "SELECT cardinality(range(1, 1000000000))",
            "SELECT cardinality(generate_series(1, 1000000000))",
            "SELECT cardinality(array_resize([1], 100000000, 0))",
        ] {
            let err = run(&ctx, sql).await.expect_err(sql);
            assert!(err.contains("--memory-limit"), "{sql}: {err}");
        }
        for (sql, want) in [
            ("SELECT length(repeat('ab', 1000)) AS n", "2000"),
            ("SELECT lpad('7', 3, '0') AS n", "007"),
            (
                "SELECT replace('/etc/passwd', 'etc', 'ETC') AS n",
                "/ETC/passwd",
            ),
            ("SELECT cardinality(range(1, 11)) AS n", "10"),
            ("SELECT cardinality(array_repeat('a', 5)) AS n", "5"),
        ] {
            let out = run(&ctx, sql).await.unwrap();
            assert!(out.contains(want), "{sql}: {out}");
        }
    }
}
