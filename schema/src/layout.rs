//! How a capture segment is laid out on disk: the Parquet writer settings every segment is
//! written with, by the recorder and by the synthetic-capture generator alike.
use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::properties::{EnabledStatistics, WriterProperties};

/// Rows per Parquet row group: small enough that a time-range query skips most of a large
/// segment by row-group statistics and the writer holds little in memory, large enough for
/// zstd and dictionaries to pay off.
pub const ROW_GROUP_ROWS: usize = 65_536;

/// zstd level 3, dictionary encoding (repeating comm, path and flag names), page-level
/// statistics and the page index, row groups of [`ROW_GROUP_ROWS`].
pub fn writer_properties(created_by: &str) -> Result<WriterProperties, ParquetError> {
    Ok(WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .set_dictionary_enabled(true)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_created_by(created_by.to_string())
        .build())
}
