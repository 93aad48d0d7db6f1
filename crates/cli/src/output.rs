//! Tables for people, JSON for scripts.

use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};

/// `println!` that ends the process quietly when stdout is closed (`tally ... | head`), instead
/// of panicking on the broken pipe.
macro_rules! emit {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        if let Err(error) = writeln!(out, $($arg)*) {
            if error.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}
pub(crate) use emit;
use serde_json::Value;

/// Prints `rows` under `header`, or the same data as a JSON array of objects with `--json`.
pub fn print_rows(json: bool, header: &[&str], rows: Vec<Vec<String>>) {
    if json {
        let objects: Vec<Value> = rows
            .into_iter()
            .map(|row| {
                Value::Object(
                    header
                        .iter()
                        .zip(row)
                        .map(|(key, value)| ((*key).to_owned(), Value::String(value)))
                        .collect(),
                )
            })
            .collect();
        emit!("{}", Value::Array(objects));
        return;
    }
    let mut table = Table::new();
    table
        .load_style(UTF8_FULL_CONDENSED)
        .set_header(header.to_vec());
    for row in rows {
        table.add_row(row);
    }
    emit!("{table}");
}

/// Prints one record as a two-column table, or as a JSON object.
pub fn print_record(json: bool, fields: Vec<(&str, String)>) {
    if json {
        let object: serde_json::Map<String, Value> = fields
            .into_iter()
            .map(|(key, value)| (key.to_owned(), Value::String(value)))
            .collect();
        emit!("{}", Value::Object(object));
        return;
    }
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED);
    for (key, value) in fields {
        table.add_row(vec![key.to_owned(), value]);
    }
    emit!("{table}");
}
