//! Rendering query results: an aligned table for people, CSV and JSON lines for programs.
use std::io::Write;
use std::sync::Arc;

use anyhow::Context as _;
use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use arrow::datatypes::DataType;

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Format {
    /// Aligned table; long text cut to `--max-width` characters.
    Table,
    /// CSV with a header row, values complete.
    Csv,
    /// One JSON object per row, values complete.
    Json,
    /// A zstd-compressed Parquet file (with `--output`); rows of the events or calls tables
    /// become a capture fantrace opens like a recorded one.
    Parquet,
}

/// Writes plain Parquet (zstd) of `batches`, which may be none: a result of no rows is still
/// a valid file with its columns.
pub fn write_parquet(
    schema: arrow::datatypes::SchemaRef,
    batches: &[RecordBatch],
    file: std::fs::File,
) -> anyhow::Result<()> {
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::basic::{Compression, ZstdLevel};
    use datafusion::parquet::file::properties::WriterProperties;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .build();
    let mut w = ArrowWriter::try_new(file, schema, Some(props))?;
    for b in batches {
        w.write(b)?;
    }
    w.close()?;
    Ok(())
}

pub fn write(
    format: Format,
    batches: &[RecordBatch],
    max_width: usize,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    match format {
        Format::Table => {
            let cut: Vec<RecordBatch> = batches
                .iter()
                .map(|b| truncate_text(b, max_width))
                .collect::<Result<_, _>>()?;
            // NULL must not look like an empty string (a NULL path is not an empty path).
            let options = arrow::util::display::FormatOptions::default().with_null("NULL");
            let table = arrow::util::pretty::pretty_format_batches_with_options(&cut, &options)
                .context("formatting the result table")?;
            writeln!(out, "{table}")?;
        }
        Format::Csv => {
            let mut w = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(out);
            for b in batches {
                w.write(&lists_as_text(b)?).context("writing CSV")?;
            }
        }
        Format::Json => {
            // A NULL is written as null, not left out: a reader must not have to guess
            // whether a missing key means NULL or a column it does not know.
            let mut w = arrow::json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, arrow::json::writer::LineDelimited>(out);
            for b in batches {
                w.write(b).context("writing JSON")?;
            }
            w.finish().context("writing JSON")?;
        }
        Format::Parquet => anyhow::bail!("--format parquet writes a file: add --output FILE"),
    }
    Ok(())
}

/// CSV has no lists: each list cell becomes `[a, b]`, as DuckDB writes them, NULL stays empty.
fn lists_as_text(batch: &RecordBatch) -> anyhow::Result<RecordBatch> {
    let options = arrow::util::display::FormatOptions::default();
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (field, col) in batch.schema().fields().iter().zip(batch.columns()) {
        match col.data_type() {
            DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) => {
                let show = arrow::util::display::ArrayFormatter::try_new(col.as_ref(), &options)?;
                let text: StringArray = (0..col.len())
                    .map(|i| (!col.is_null(i)).then(|| show.value(i).to_string()))
                    .collect();
                fields.push(field.as_ref().clone().with_data_type(DataType::Utf8));
                columns.push(Arc::new(text));
            }
            _ => {
                fields.push(field.as_ref().clone());
                columns.push(col.clone());
            }
        }
    }
    Ok(RecordBatch::try_new(
        Arc::new(arrow::datatypes::Schema::new(fields)),
        columns,
    )?)
}

/// Cuts text cells longer than `max` characters to `max - 1` plus "…", so one 4000-byte path
/// does not make a table unreadable. Machine formats are never cut.
fn truncate_text(batch: &RecordBatch, max: usize) -> Result<RecordBatch, arrow::error::ArrowError> {
    if max == 0 {
        return Ok(batch.clone());
    }
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(|col| match col.data_type() {
            // DataFusion reads Parquet text as Utf8View; render every string kind the same way.
            DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => {
                let col = arrow::compute::cast(col, &DataType::Utf8)?;
                let s = col.as_string::<i32>();
                let cut: StringArray = s
                    .iter()
                    .map(|v| {
                        v.map(|v| match v.char_indices().nth(max.saturating_sub(1)) {
                            Some((i, _)) if v.chars().count() > max => format!("{}…", &v[..i]),
                            _ => v.to_string(),
                        })
                    })
                    .collect();
                Ok(Arc::new(cut) as ArrayRef)
            }
            _ => Ok(col.clone()),
        })
        .collect::<Result<_, arrow::error::ArrowError>>()?;
    let fields: Vec<arrow::datatypes::Field> = batch
        .schema()
        .fields()
        .iter()
        .zip(&columns)
        .map(|(f, c)| f.as_ref().clone().with_data_type(c.data_type().clone()))
        .collect();
    RecordBatch::try_new(Arc::new(arrow::datatypes::Schema::new(fields)), columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{Field, Schema};

    #[test]
    fn table_cuts_long_text_but_json_keeps_it() {
        let long = "x".repeat(100);
        let schema = Arc::new(Schema::new(vec![Field::new("p", DataType::Utf8View, true)]));
        let batch = RecordBatch::try_new(
            schema,
            vec![Arc::new(arrow::array::StringViewArray::from(vec![
                Some(long.as_str()),
                Some("short"),
                None,
            ]))],
        )
        .unwrap();
        let mut table = Vec::new();
        write(Format::Table, std::slice::from_ref(&batch), 10, &mut table).unwrap();
        let table = String::from_utf8(table).unwrap();
        assert!(table.contains("xxxxxxxxx…"), "{table}");
        assert!(!table.contains(&"x".repeat(11)));
        let mut json = Vec::new();
        write(Format::Json, &[batch], 10, &mut json).unwrap();
        assert!(String::from_utf8(json).unwrap().contains(&long));
    }
}
