//! How a capture segment is laid out on disk: the Parquet writer settings every segment is
//! written with, by the recorder and by the synthetic-capture generator alike.
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

/// Rows per Parquet row group: small enough that a time-range query skips most of a large
/// segment by row-group statistics and the writer holds little in memory, large enough for
/// zstd and dictionaries to pay off.
pub const ROW_GROUP_ROWS: usize = 65_536;

/// Columns that hold a different value in nearly every row. A dictionary cannot shrink them,
/// and building one hashes every value: for `time` and `duration_ns` that was a fifth of the
/// recorder's writing time. `time` is sorted, so deltas pack it tightly instead.
const UNIQUE_COLUMNS: [(&str, Encoding); 2] = [
    ("time", Encoding::DELTA_BINARY_PACKED),
    ("duration_ns", Encoding::PLAIN),
];

/// zstd level 3, dictionary encoding for the repeating columns (comm, paths, ids, flags),
/// page-level statistics and the page index, row groups of [`ROW_GROUP_ROWS`].
pub fn writer_properties(created_by: &str) -> Result<WriterProperties, ParquetError> {
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .set_dictionary_enabled(true)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_created_by(created_by.to_string());
    for (column, encoding) in UNIQUE_COLUMNS {
        let path = ColumnPath::from(column);
        builder = builder
            .set_column_dictionary_enabled(path.clone(), false)
            .set_column_encoding(path, encoding);
    }
    Ok(builder.build())
}
