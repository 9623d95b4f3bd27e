//! SQL functions that decode fanotify values, built from the `schema` tables (names are never
//! repeated here).
use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, ArrowPrimitiveType, AsArray, BooleanArray, ListBuilder, PrimitiveArray,
    StringBuilder, StringViewArray, UInt32Array, UInt64Array,
};
use arrow::datatypes::{ArrowNativeType, DataType, Field, Int64Type, UInt32Type, UInt64Type};
use datafusion::common::DataFusionError;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};
use datafusion::prelude::SessionContext;
use fantrace_schema::decode::{
    errno_text, exit_status_text, flag_names, init_class, init_flag_names, mark_action,
    mark_flag_list, mark_type, mask_list, mask_names,
};
use fantrace_schema::flags::MASK_BITS;

/// Name, signature and one-line help of each function, for `\df`-style listings.
pub const HELP: &[(&str, &str, &str)] = &[
    (
        "fan_flag_names",
        "fan_flag_names(flags UINT32) -> TEXT",
        "FAN_MARK_* names of a fanotify_mark flags value, '|'-joined; mark type included unless inode; unknown bits as hex",
    ),
    (
        "fan_mask_names",
        "fan_mask_names(mask UINT64) -> TEXT",
        "FAN_* event names of a mask, '|'-joined; unknown bits as hex; '0' for an empty mask",
    ),
    (
        "fan_flag_list",
        "fan_flag_list(flags UINT32) -> LIST(TEXT)",
        "FAN_MARK_* names of a fanotify_mark flags value as a list, without the mark type (events.flag_names)",
    ),
    (
        "fan_mask_list",
        "fan_mask_list(mask UINT64) -> LIST(TEXT)",
        "FAN_* event names of a mask as a list; empty for an empty mask (events.mask_names)",
    ),
    (
        "fan_mark_action",
        "fan_mark_action(flags UINT32) -> TEXT",
        "add, remove or flush; invalid combinations '|'-joined, or none (events.mark_action)",
    ),
    (
        "fan_mark_type",
        "fan_mark_type(flags UINT32) -> TEXT",
        "inode, mount, filesystem or mntns: the mark-type field of the flags",
    ),
    (
        "fan_init_flag_names",
        "fan_init_flag_names(flags UINT32) -> TEXT",
        "fanotify_init flags: the FAN_CLASS_* class, then FAN_CLOEXEC, FAN_REPORT_*, ...",
    ),
    (
        "fan_init_class",
        "fan_init_class(flags UINT32) -> TEXT",
        "notif, content or pre_content: content and pre_content groups get permission events",
    ),
    (
        "errno_name",
        "errno_name(ret INT64) -> TEXT",
        "EBADF, ENOENT, ... for a negative return value; NULL for success",
    ),
    (
        "has_mask",
        "has_mask(mask UINT64, name TEXT) -> BOOLEAN",
        "whether the mask has the named FAN_* bit, e.g. has_mask(mask, 'FAN_OPEN_PERM')",
    ),
    (
        "fan_exit_status",
        "fan_exit_status(status INT64) -> TEXT",
        "a process_exit row's wait status as strace says it: 'exited with 1', 'killed by SIGKILL'",
    ),
    (
        "fan_mark_fold",
        "fan_mark_fold(time, flags, mask) -> STRUCT(mask, ignored_mask)",
        "aggregate: a mark's masks after the calls on it, applied in time order (the marks view uses it)",
    ),
    (
        "fan_origin",
        "fan_origin(host TEXT, boot_id TEXT) -> UINT64",
        "one number per recorded machine and boot (a 64-bit hash), a compact key for joins",
    ),
    (
        "marks_at",
        "marks_at(time TEXT) -> TABLE",
        "the marks in force (or unknown) at a moment: '2026-11-26T03:00:00Z', a date, or 15m (ago)",
    ),
];

pub fn register(ctx: &SessionContext) {
    for udf in scalar_functions() {
        ctx.register_udf(udf);
    }
    for udaf in aggregate_functions() {
        ctx.register_udaf(udaf);
    }
}

/// fantrace's scalar functions (decoding flags, masks, errno).
pub fn scalar_functions() -> Vec<ScalarUDF> {
    vec![
        fan_flag_names(),
        fan_mask_names(),
        fan_mark_type(),
        unary_text::<UInt32Type>("fan_mark_action", DataType::UInt32, |v| {
            Some(mark_action(u64::from(v)).to_string())
        }),
        unary_list::<UInt32Type>("fan_flag_list", DataType::UInt32, |v| {
            mark_flag_list(u64::from(v))
        }),
        unary_list::<UInt64Type>("fan_mask_list", DataType::UInt64, mask_list),
        unary_text::<UInt32Type>("fan_init_flag_names", DataType::UInt32, |v| {
            Some(init_flag_names(u64::from(v)))
        }),
        unary_text::<UInt32Type>("fan_init_class", DataType::UInt32, |v| {
            Some(init_class(u64::from(v)).to_string())
        }),
        errno_name(),
        has_mask(),
        fan_origin(),
        unary_text::<Int64Type>("fan_exit_status", DataType::Int64, |v| {
            Some(exit_status_text(v))
        }),
    ]
}

/// fantrace's aggregates: `count`, replacing DataFusion's so that `count(DISTINCT ...)` sizes
/// nested values truly (see `count_distinct`), and `fan_mark_fold` (see `mark_fold`).
pub fn aggregate_functions() -> Vec<datafusion::logical_expr::AggregateUDF> {
    vec![
        crate::sql::count_distinct::count(),
        crate::sql::mark_fold::fan_mark_fold(),
    ]
}

/// A function from one integer column to text (NULL in, NULL out), decoded by [`decode_text`].
fn unary_text<T: ArrowPrimitiveType>(
    name: &str,
    input: DataType,
    f: fn(T::Native) -> Option<String>,
) -> ScalarUDF {
    create_udf(
        name,
        vec![input],
        DataType::Utf8View,
        Volatility::Immutable,
        Arc::new(move |args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let out = decode_text(arrays[0].as_primitive::<T>(), f)?;
            Ok(ColumnarValue::Array(out))
        }),
    )
}

/// Decodes an integer column through `f` once per distinct value. A column of millions of
/// calls holds a handful of distinct flags or return values, so a row costs a table lookup
/// and a 16-byte string view copied from the decoded values, instead of a string built,
/// allocated and copied: `mark_action` over ten million calls went from 390 ms to a few.
fn decode_text<T: ArrowPrimitiveType>(
    values: &PrimitiveArray<T>,
    f: impl Fn(T::Native) -> Option<String>,
) -> Result<ArrayRef, DataFusionError> {
    // A direct-mapped cache in front of the map: most rows hit it.
    const SLOTS: usize = 256;
    let mut slots: Vec<Option<(u64, Option<u32>)>> = vec![None; SLOTS];
    let mut seen: HashMap<u64, Option<u32>> = HashMap::new();
    let mut texts: Vec<String> = Vec::new();
    let indices: UInt32Array = {
        let mut index_of = |v: T::Native| -> Option<u32> {
            // Every native integer type fits a u64 bit for bit, so keys never collide.
            let key = v.as_usize() as u64;
            // The top eight bits of a multiplicative hash: one of the 256 slots.
            let slot = (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as usize;
            if let Some((k, index)) = slots[slot]
                && k == key
            {
                return index;
            }
            let index = *seen.entry(key).or_insert_with(|| {
                f(v).map(|text| {
                    texts.push(text);
                    (texts.len() - 1) as u32
                })
            });
            slots[slot] = Some((key, index));
            index
        };
        values.iter().map(|v| v.and_then(&mut index_of)).collect()
    };
    let decoded = StringViewArray::from_iter_values(texts.iter());
    Ok(arrow::compute::take(&decoded, &indices, None)?)
}

/// A function from one integer column to a list of names (NULL in, NULL out).
fn unary_list<T: arrow::datatypes::ArrowPrimitiveType>(
    name: &str,
    input: DataType,
    f: fn(T::Native) -> Vec<String>,
) -> ScalarUDF {
    create_udf(
        name,
        vec![input],
        fantrace_schema::arrow::names_list(),
        Volatility::Immutable,
        Arc::new(move |args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let values = arrays[0].as_primitive::<T>();
            let mut out = ListBuilder::with_capacity(StringBuilder::new(), values.len())
                .with_field(Arc::new(Field::new_list_field(DataType::Utf8, false)));
            for v in values.iter() {
                match v {
                    Some(v) => {
                        for name in f(v) {
                            out.values().append_value(name);
                        }
                        out.append(true);
                    }
                    None => out.append(false),
                }
            }
            Ok(ColumnarValue::Array(Arc::new(out.finish()) as ArrayRef))
        }),
    )
}

fn fan_flag_names() -> ScalarUDF {
    unary_text::<UInt32Type>("fan_flag_names", DataType::UInt32, |v| {
        Some(flag_names(u64::from(v)))
    })
}

fn fan_mask_names() -> ScalarUDF {
    unary_text::<UInt64Type>("fan_mask_names", DataType::UInt64, |v| Some(mask_names(v)))
}

fn fan_mark_type() -> ScalarUDF {
    unary_text::<UInt32Type>("fan_mark_type", DataType::UInt32, |v| {
        Some(mark_type(u64::from(v)).to_string())
    })
}

/// `fan_origin(host, boot_id)`: one number standing for a recording's machine and boot, so
/// that the mark state's sorts, joins and groupings key on eight bytes instead of two
/// strings (a boot id alone is 36). 64 bits: two boots of a fleet share a number with a
/// chance below one in a billion, and would show as duplicated rows, not merged ones.
fn fan_origin() -> ScalarUDF {
    create_udf(
        "fan_origin",
        vec![DataType::Utf8View, DataType::Utf8View],
        DataType::UInt64,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            use std::hash::{Hash, Hasher};
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let hosts = arrays[0].as_string_view();
            let boots = arrays[1].as_string_view();
            let keys: UInt64Array = hosts
                .iter()
                .zip(boots.iter())
                .map(|(host, boot)| {
                    // Fixed keys: the same origin gets the same number in every process of
                    // a cluster.
                    let mut h = std::hash::DefaultHasher::new();
                    (host, boot).hash(&mut h);
                    Some(h.finish())
                })
                .collect();
            let out: ArrayRef = Arc::new(keys);
            Ok(match args {
                [ColumnarValue::Scalar(_), ColumnarValue::Scalar(_)] => {
                    ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from_array(&out, 0)?)
                }
                _ => ColumnarValue::Array(out),
            })
        }),
    )
}

fn errno_name() -> ScalarUDF {
    unary_text::<Int64Type>("errno_name", DataType::Int64, errno_text)
}

/// The mask bit a `has_mask` name stands for, or an error listing the names.
fn mask_bit(wanted: &str) -> Result<u64, DataFusionError> {
    MASK_BITS
        .iter()
        .find(|b| b.name.eq_ignore_ascii_case(wanted))
        .map(|b| b.value)
        .ok_or_else(|| {
            DataFusionError::Execution(format!(
                "has_mask: unknown fanotify event name {wanted:?}; known names: {}",
                MASK_BITS
                    .iter()
                    .map(|b| b.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}

fn has_mask() -> ScalarUDF {
    create_udf(
        "has_mask",
        vec![DataType::UInt64, DataType::Utf8],
        DataType::Boolean,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            // The usual call names the bit with a literal: look it up once and test the whole
            // column with one vectorised pass.
            if let (ColumnarValue::Array(masks), ColumnarValue::Scalar(name)) = (&args[0], &args[1])
            {
                let masks = masks.as_primitive::<UInt64Type>();
                let out = match name.try_as_str() {
                    Some(Some(wanted)) => {
                        let bit = mask_bit(wanted)?;
                        BooleanArray::from_unary(masks, |m| m & bit == bit)
                    }
                    _ => BooleanArray::new_null(masks.len()),
                };
                return Ok(ColumnarValue::Array(Arc::new(out) as ArrayRef));
            }
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let masks = arrays[0].as_primitive::<UInt64Type>();
            let names = arrays[1].as_string::<i32>();
            let mut out = Vec::with_capacity(masks.len());
            for i in 0..masks.len() {
                if masks.is_null(i) || names.is_null(i) {
                    out.push(None);
                    continue;
                }
                let bit = mask_bit(names.value(i))?;
                out.push(Some(masks.value(i) & bit == bit));
            }
            Ok(ColumnarValue::Array(
                Arc::new(BooleanArray::from(out)) as ArrayRef
            ))
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The result of `sql` as a printed table.
    async fn pretty(ctx: &SessionContext, sql: &str) -> String {
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string()
    }

    #[tokio::test]
    async fn functions_work_in_sql() {
        let ctx = SessionContext::new();
        register(&ctx);
        let text = pretty(
            &ctx,
            "SELECT fan_flag_names(arrow_cast(17, 'UInt32')) AS f, \
             fan_mask_names(arrow_cast(65568, 'UInt64')) AS m, \
             fan_mark_type(arrow_cast(256, 'UInt32')) AS t, \
             errno_name(arrow_cast(-9, 'Int64')) AS e, errno_name(arrow_cast(0, 'Int64')) AS ok, \
             has_mask(arrow_cast(65568, 'UInt64'), 'FAN_OPEN_PERM') AS p",
        )
        .await;
        for want in [
            "FAN_MARK_ADD|FAN_MARK_MOUNT",
            "FAN_OPEN|FAN_OPEN_PERM",
            "filesystem",
            "EBADF",
            "true",
        ] {
            assert!(text.contains(want), "{want} missing from\n{text}");
        }
        let err = ctx
            .sql("SELECT has_mask(arrow_cast(1, 'UInt64'), 'FAN_NOPE')")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap_err();
        assert!(err.to_string().contains("unknown fanotify event name"));
        // A bit name that is not a literal is looked up row by row.
        let text = pretty(
            &ctx,
            "SELECT has_mask(m, n) AS p FROM (VALUES (arrow_cast(65536, 'UInt64'), \
             'FAN_OPEN_PERM'), (arrow_cast(32, 'UInt64'), 'FAN_OPEN_PERM')) AS t(m, n)",
        )
        .await;
        assert!(text.contains("true") && text.contains("false"), "{text}");
    }

    #[test]
    fn decode_text_decodes_each_row_and_keeps_nulls() {
        let flags = PrimitiveArray::<UInt32Type>::from(vec![
            Some(0x11),
            None,
            Some(0x1),
            Some(0x11),
            Some(0x80),
            Some(0x2),
        ]);
        let calls = std::cell::Cell::new(0);
        let out = decode_text(&flags, |v| {
            calls.set(calls.get() + 1);
            (v != 0x2).then(|| format!("{}-{}", mark_action(u64::from(v)), mark_type(u64::from(v))))
        })
        .unwrap();
        let out = out.as_string_view();
        let got: Vec<Option<&str>> = out.iter().collect();
        assert_eq!(
            got,
            [
                Some("add-mount"),
                None,
                Some("add-inode"),
                Some("add-mount"),
                Some("flush-inode"),
                None
            ]
        );
        assert_eq!(calls.get(), 4, "decoded once per distinct value");
    }
}
