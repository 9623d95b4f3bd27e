//! `fan_mark_fold(time, flags, mask)`: the aggregate that gives a mark's `{mask, ignored_mask}`
//! after the calls on it, applied in time order whatever order the rows arrive in.
//!
//! It is an aggregate of its own, not `array_agg(... ORDER BY time)` handed to a scalar
//! function, because DataFusion has no grouped form of an ordered `array_agg`: it keeps one
//! boxed accumulator of `ScalarValue`s per group, and on a 10M-call capture with 7.7M marks
//! that did not finish within 12 GB. Here a group keeps its calls as three numbers each
//! (nearly every mark has one call, kept inline), and the kernel's arithmetic
//! (`decode::fold_mark`) runs once per mark when the result is asked for.
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray as _, BooleanArray, Int64Array, ListArray, StructArray, UInt64Array,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, FieldRef, Fields, Int64Type, UInt64Type};
use datafusion::common::{Result, ScalarValue, internal_err, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::{AggregateOrderSensitivity, format_state_name};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};
use fantrace_schema::decode::fold_mark;

pub fn fan_mark_fold() -> AggregateUDF {
    AggregateUDF::new_from_impl(MarkFold {
        signature: Signature::any(3, Volatility::Immutable),
    })
}

/// `{mask, ignored_mask}`, what `fan_mark_fold` returns.
pub fn result_type() -> DataType {
    DataType::Struct(result_fields())
}

fn result_fields() -> Fields {
    vec![
        Field::new("mask", DataType::UInt64, false),
        Field::new("ignored_mask", DataType::UInt64, false),
    ]
    .into()
}

/// A partial result travels between aggregation phases (and Ballista's executors) as the
/// list of calls it holds.
fn call_fields() -> Fields {
    vec![
        Field::new("time", DataType::Int64, false),
        Field::new("flags", DataType::UInt64, false),
        Field::new("mask", DataType::UInt64, false),
    ]
    .into()
}

fn state_type() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(
        DataType::Struct(call_fields()),
        false,
    )))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct MarkFold {
    signature: Signature,
}

impl AggregateUDFImpl for MarkFold {
    fn name(&self) -> &str {
        "fan_mark_fold"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        let [time, flags, mask] = arg_types else {
            return plan_err!("fan_mark_fold takes three arguments: (time, flags, mask)");
        };
        if !(matches!(time, DataType::Timestamp(_, _)) || time.is_integer()) {
            return plan_err!("fan_mark_fold: time must be a timestamp or an integer, not {time}");
        }
        if !flags.is_integer() || !mask.is_integer() {
            return plan_err!(
                "fan_mark_fold: flags and mask must be integers (the calls' flags and mask \
                 columns), not {flags} and {mask}"
            );
        }
        Ok(result_type())
    }

    fn is_nullable(&self) -> bool {
        false
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format_state_name(args.name, "calls"),
            state_type(),
            true,
        ))])
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::<OneFold>::default())
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        _args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::<GroupFolds>::default())
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        // The calls carry their time and are put in order by the fold itself.
        AggregateOrderSensitivity::Insensitive
    }
}

#[derive(Clone, Copy, Debug)]
struct Call {
    time: i64,
    flags: u64,
    mask: u64,
}

/// One mark's calls: none, one kept inline, or more on the heap.
#[derive(Debug, Default)]
enum Calls {
    #[default]
    None,
    One(Call),
    Many(Vec<Call>),
}

impl Calls {
    /// Adds a call; returns how many heap bytes that took.
    fn push(&mut self, call: Call) -> usize {
        let (next, grown) = match std::mem::take(self) {
            Calls::None => (Calls::One(call), 0),
            Calls::One(first) => {
                let many = vec![first, call];
                let grown = many.capacity();
                (Calls::Many(many), grown)
            }
            Calls::Many(mut many) => {
                let before = many.capacity();
                many.push(call);
                let grown = many.capacity() - before;
                (Calls::Many(many), grown)
            }
        };
        *self = next;
        grown * size_of::<Call>()
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Calls::Many(many) => many.capacity() * size_of::<Call>(),
            _ => 0,
        }
    }

    fn as_slice(&self) -> &[Call] {
        match self {
            Calls::None => &[],
            Calls::One(call) => std::slice::from_ref(call),
            Calls::Many(many) => many,
        }
    }

    /// `(mask, ignored_mask)` after the calls in time order (a stable sort: calls with the
    /// same time keep the order they were seen in).
    fn fold(&mut self) -> (u64, u64) {
        if let Calls::Many(many) = self {
            many.sort_by_key(|call| call.time);
        }
        fold_mark(self.as_slice().iter().map(|call| (call.flags, call.mask)))
    }
}

/// The three argument columns as numbers; a row with a NULL in any of them is not a call
/// (the marks view passes NULL flags for calls a flush undid).
struct Args {
    time: Int64Array,
    flags: UInt64Array,
    mask: UInt64Array,
}

impl Args {
    fn new(values: &[ArrayRef]) -> Result<Args> {
        let [time, flags, mask] = values else {
            return internal_err!("fan_mark_fold got {} arguments, not 3", values.len());
        };
        // A timestamp casts to its raw count of units since the epoch.
        let time = arrow::compute::cast(time, &DataType::Int64)?
            .as_primitive::<Int64Type>()
            .clone();
        let flags = arrow::compute::cast(flags, &DataType::UInt64)?
            .as_primitive::<UInt64Type>()
            .clone();
        let mask = arrow::compute::cast(mask, &DataType::UInt64)?
            .as_primitive::<UInt64Type>()
            .clone();
        Ok(Args { time, flags, mask })
    }

    fn call(&self, row: usize, filter: Option<&BooleanArray>) -> Option<Call> {
        if filter.is_some_and(|f| !f.is_valid(row) || !f.value(row))
            || self.time.is_null(row)
            || self.flags.is_null(row)
            || self.mask.is_null(row)
        {
            return None;
        }
        Some(Call {
            time: self.time.value(row),
            flags: self.flags.value(row),
            mask: self.mask.value(row),
        })
    }
}

fn results(folds: impl Iterator<Item = (u64, u64)>) -> Result<ArrayRef> {
    let (mask, ignored): (Vec<u64>, Vec<u64>) = folds.unzip();
    Ok(Arc::new(StructArray::try_new(
        result_fields(),
        vec![
            Arc::new(UInt64Array::from(mask)) as ArrayRef,
            Arc::new(UInt64Array::from(ignored)) as ArrayRef,
        ],
        None,
    )?))
}

/// The partial state of several groups: one list of calls per group.
fn states<'a>(groups: impl Iterator<Item = &'a [Call]>) -> Result<ArrayRef> {
    let (mut time, mut flags, mut mask) = (Vec::new(), Vec::new(), Vec::new());
    let mut lengths = Vec::new();
    for calls in groups {
        lengths.push(calls.len());
        for call in calls {
            time.push(call.time);
            flags.push(call.flags);
            mask.push(call.mask);
        }
    }
    let calls = StructArray::try_new(
        call_fields(),
        vec![
            Arc::new(Int64Array::from(time)) as ArrayRef,
            Arc::new(UInt64Array::from(flags)) as ArrayRef,
            Arc::new(UInt64Array::from(mask)) as ArrayRef,
        ],
        None,
    )?;
    let DataType::List(item) = state_type() else {
        return internal_err!("fan_mark_fold's state is a list");
    };
    Ok(Arc::new(ListArray::try_new(
        item,
        OffsetBuffer::from_lengths(lengths),
        Arc::new(calls),
        None,
    )?))
}

/// Calls out of a partial state: `(row, call)` for every call of every non-NULL row.
fn state_calls(state: &ArrayRef) -> Result<Vec<(usize, Call)>> {
    let lists = state.as_list::<i32>();
    let calls = lists.values().as_struct();
    let [time, flags, mask] = calls.columns() else {
        return internal_err!("fan_mark_fold's state has {} fields", calls.num_columns());
    };
    let (time, flags, mask) = (
        time.as_primitive::<Int64Type>(),
        flags.as_primitive::<UInt64Type>(),
        mask.as_primitive::<UInt64Type>(),
    );
    let offsets = lists.value_offsets();
    let mut out = Vec::with_capacity(calls.len());
    for row in 0..lists.len() {
        if lists.is_null(row) {
            continue;
        }
        for i in offsets[row] as usize..offsets[row + 1] as usize {
            out.push((
                row,
                Call {
                    time: time.value(i),
                    flags: flags.value(i),
                    mask: mask.value(i),
                },
            ));
        }
    }
    Ok(out)
}

#[derive(Debug, Default)]
struct GroupFolds {
    groups: Vec<Calls>,
    heap_bytes: usize,
}

impl GroupFolds {
    fn take(&mut self, emit_to: EmitTo) -> Vec<Calls> {
        let taken = emit_to.take_needed(&mut self.groups);
        self.heap_bytes -= taken.iter().map(Calls::heap_bytes).sum::<usize>();
        taken
    }
}

impl GroupsAccumulator for GroupFolds {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.groups.resize_with(total_num_groups, Calls::default);
        let args = Args::new(values)?;
        for (row, &group) in group_indices.iter().enumerate() {
            if let Some(call) = args.call(row, opt_filter) {
                self.heap_bytes += self.groups[group].push(call);
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let mut taken = self.take(emit_to);
        results(taken.iter_mut().map(Calls::fold))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let taken = self.take(emit_to);
        Ok(vec![states(taken.iter().map(Calls::as_slice))?])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.groups.resize_with(total_num_groups, Calls::default);
        let Some(state) = values.first() else {
            return internal_err!("fan_mark_fold merged without a state");
        };
        for (row, call) in state_calls(state)? {
            self.heap_bytes += self.groups[group_indices[row]].push(call);
        }
        Ok(())
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let args = Args::new(values)?;
        let calls: Vec<Option<Call>> = (0..args.time.len())
            .map(|row| args.call(row, opt_filter))
            .collect();
        Ok(vec![states(calls.iter().map(|call| match call {
            Some(call) => std::slice::from_ref(call),
            None => &[],
        }))?])
    }

    fn size(&self) -> usize {
        self.groups.capacity() * size_of::<Calls>() + self.heap_bytes
    }
}

/// The same for one group (no GROUP BY, or window use).
#[derive(Debug, Default)]
struct OneFold {
    calls: Calls,
}

impl Accumulator for OneFold {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let args = Args::new(values)?;
        for row in 0..args.time.len() {
            if let Some(call) = args.call(row, None) {
                self.calls.push(call);
            }
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let Some(state) = states.first() else {
            return internal_err!("fan_mark_fold merged without a state");
        };
        for (_, call) in state_calls(state)? {
            self.calls.push(call);
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let list = states(std::iter::once(self.calls.as_slice()))?;
        Ok(vec![ScalarValue::try_from_array(&list, 0)?])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let result = results(std::iter::once(self.calls.fold()))?;
        ScalarValue::try_from_array(&result, 0)
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.calls.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::SessionContext;

    async fn folded(sql: &str) -> Vec<String> {
        let ctx = SessionContext::new();
        ctx.register_udaf(super::fan_mark_fold());
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let text = arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string();
        text.lines().map(str::to_string).collect()
    }

    /// Calls given out of time order, in several batches and partitions, fold as if in order.
    #[tokio::test]
    async fn calls_fold_in_time_order_whatever_order_they_arrive_in() {
        // mark 'a': add 0x3 at t=1, remove 0x1 at t=2, add ignore 0x20 at t=3 -> (0x2, 0x20)
        // mark 'b': remove 0x1 at t=5 after add 0x1 at t=4 -> nothing left
        // mark 'c': a call the query dropped (NULL flags) does not count
        let lines = folded(
            "SELECT m, fan_mark_fold(t, f, k)['mask'] AS mask,
                    fan_mark_fold(t, f, k)['ignored_mask'] AS ignored
             FROM (VALUES ('a', 3, 33, 32), ('b', 5, 2, 1), ('a', 2, 2, 1),
                          ('c', 1, NULL, 4), ('b', 4, 1, 1), ('a', 1, 1, 3),
                          ('c', 2, 1, 8)) AS t(m, t, f, k)
             GROUP BY m ORDER BY m",
        )
        .await;
        assert_eq!(
            lines[3..6],
            [
                "| a | 2    | 32      |",
                "| b | 0    | 0       |",
                "| c | 8    | 0       |",
            ]
        );
    }

    /// The grouped form, its partial states and the single-group form agree on a table large
    /// enough to be split across partitions and batches.
    #[tokio::test]
    async fn grouped_and_single_forms_agree() {
        let ctx = SessionContext::new_with_config(
            datafusion::prelude::SessionConfig::new()
                .with_target_partitions(4)
                .with_batch_size(7),
        );
        ctx.register_udaf(super::fan_mark_fold());
        // Each group g alternates add and remove of bit (g % 5), newest call decides.
        let sql =
            "SELECT g % 10 AS g, fan_mark_fold(100000 - g, CASE WHEN g % 3 = 0 THEN 2 ELSE 1 END,
                                         arrow_cast(1, 'UInt64') << (g % 5)) AS s
                   FROM generate_series(1, 500) AS t(g) GROUP BY g % 10 ORDER BY g";
        let grouped = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let grouped = arrow::util::pretty::pretty_format_batches(&grouped)
            .unwrap()
            .to_string();
        for g in 0..10i64 {
            let one = ctx
                .sql(&format!(
                    "SELECT fan_mark_fold(100000 - g, CASE WHEN g % 3 = 0 THEN 2 ELSE 1 END,
                                          arrow_cast(1, 'UInt64') << (g % 5)) AS s
                     FROM generate_series(1, 500) AS t(g) WHERE g % 10 = {g}"
                ))
                .await
                .unwrap()
                .collect()
                .await
                .unwrap();
            let one = arrow::util::pretty::pretty_format_batches(&one)
                .unwrap()
                .to_string();
            let value = one.lines().nth(3).unwrap().trim_matches('|').trim();
            assert!(
                grouped.contains(&format!("| {g} | {value}")),
                "group {g}: single form {value}, grouped:\n{grouped}"
            );
        }
        // The newest call of group 0 (g = 10, time 99990) is an add of bit 0.
        assert!(
            grouped.contains("| 0 | {mask: 1, ignored_mask: 0}"),
            "{grouped}"
        );
    }
}
