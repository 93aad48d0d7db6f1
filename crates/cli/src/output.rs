//! Tables for people, JSON for scripts.

use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
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
        println!("{}", Value::Array(objects));
        return;
    }
    let mut table = Table::new();
    table
        .load_style(UTF8_FULL_CONDENSED)
        .set_header(header.to_vec());
    for row in rows {
        table.add_row(row);
    }
    println!("{table}");
}

/// Prints one record as a two-column table, or as a JSON object.
pub fn print_record(json: bool, fields: Vec<(&str, String)>) {
    if json {
        let object: serde_json::Map<String, Value> = fields
            .into_iter()
            .map(|(key, value)| (key.to_owned(), Value::String(value)))
            .collect();
        println!("{}", Value::Object(object));
        return;
    }
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED);
    for (key, value) in fields {
        table.add_row(vec![key.to_owned(), value]);
    }
    println!("{table}");
}
