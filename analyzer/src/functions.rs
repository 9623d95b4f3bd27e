//! SQL functions that decode fanotify values, built from the `schema` tables (names are never
//! repeated here).
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, ListBuilder, StringArray, StringBuilder,
};
use arrow::datatypes::{DataType, Field, Int64Type, UInt32Type, UInt64Type};
use datafusion::common::DataFusionError;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};
use datafusion::prelude::SessionContext;
use fantrace_schema::decode::{
    errno_text, flag_names, init_class, init_flag_names, mark_action, mark_flag_list, mark_type,
    mask_list, mask_names,
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
];

pub fn register(ctx: &SessionContext) {
    for udf in [
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
    ] {
        ctx.register_udf(udf);
    }
}

fn unary_text<T: arrow::datatypes::ArrowPrimitiveType>(
    name: &str,
    input: DataType,
    f: fn(T::Native) -> Option<String>,
) -> ScalarUDF {
    create_udf(
        name,
        vec![input],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(move |args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let values = arrays[0].as_primitive::<T>();
            let out: StringArray = values.iter().map(|v| v.and_then(f)).collect();
            Ok(ColumnarValue::Array(Arc::new(out) as ArrayRef))
        }),
    )
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

fn errno_name() -> ScalarUDF {
    unary_text::<Int64Type>("errno_name", DataType::Int64, errno_text)
}

fn has_mask() -> ScalarUDF {
    create_udf(
        "has_mask",
        vec![DataType::UInt64, DataType::Utf8],
        DataType::Boolean,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let masks = arrays[0].as_primitive::<UInt64Type>();
            let names = arrays[1].as_string::<i32>();
            let mut out = Vec::with_capacity(masks.len());
            for i in 0..masks.len() {
                if masks.is_null(i) || names.is_null(i) {
                    out.push(None);
                    continue;
                }
                let wanted = names.value(i);
                let bit = MASK_BITS
                    .iter()
                    .find(|b| b.name.eq_ignore_ascii_case(wanted))
                    .ok_or_else(|| {
                        DataFusionError::Execution(format!(
                            "has_mask: unknown fanotify event name {wanted:?}; known names: {}",
                            MASK_BITS
                                .iter()
                                .map(|b| b.name)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                    })?;
                out.push(Some(masks.value(i) & bit.value == bit.value));
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

    #[tokio::test]
    async fn functions_work_in_sql() {
        let ctx = SessionContext::new();
        register(&ctx);
        let df = ctx
            .sql(
                "SELECT fan_flag_names(arrow_cast(17, 'UInt32')) AS f, \
                 fan_mask_names(arrow_cast(65568, 'UInt64')) AS m, \
                 fan_mark_type(arrow_cast(256, 'UInt32')) AS t, \
                 errno_name(arrow_cast(-9, 'Int64')) AS e, errno_name(arrow_cast(0, 'Int64')) AS ok, \
                 has_mask(arrow_cast(65568, 'UInt64'), 'FAN_OPEN_PERM') AS p",
            )
            .await
            .unwrap();
        let batches = df.collect().await.unwrap();
        let text = arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string();
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
    }
}
