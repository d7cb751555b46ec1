//! `isocheck report REPORT… --html OUT.html`: one self-contained page (no
//! network, no external assets) over one or many reports. Rows are the
//! experiments grouped by seed section with the catalogue's "asserts" text,
//! columns are the reports; a click on a cell opens its observations,
//! measurements, control outcome and the facts that differ from a chosen
//! baseline column.
//!
//! Reports are read as plain JSON so that fields this build does not know
//! (e.g. a `measurements` map) still show.

use crate::experiment::{Experiment, Section};
use crate::formats::junit::escape;
use crate::report::Status;
use serde_json::{json, Map, Value};
use std::fmt::Write as _;

const CSS: &str = include_str!("matrix.css");
const JS: &str = include_str!("matrix.js");

/// One column: a report and the label it is shown under.
pub struct Column {
    /// The column's heading: the LABEL given, else the report's kernel.
    pub label: String,
    /// The report as raw JSON (Null if unreadable), so the page embeds it as it was written.
    pub report: Value,
}

struct Row {
    id: String,
    section: String,
    asserts: String,
    /// CVEs first, then anchors: what the row guards, then what it follows.
    refs: Vec<String>,
}

/// A report row's `cves` then `anchors`, for an id this build does not know.
fn refs_of(e: &Value) -> Vec<String> {
    ["cves", "anchors"]
        .iter()
        .flat_map(|k| e[*k].as_array().map_or(&[][..], Vec::as_slice))
        .map(text)
        .collect()
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn experiments_of(report: &Value) -> &[Value] {
    report["experiments"].as_array().map_or(&[], Vec::as_slice)
}

/// The registry's rows in catalogue order, then any id a report holds that
/// this build does not know (an older or newer suite).
fn rows(catalogue: &[&Experiment], cols: &[Column]) -> Vec<Row> {
    let mut rows: Vec<Row> = catalogue
        .iter()
        .map(|e| Row {
            id: e.id.to_string(),
            section: e.section.key().to_string(),
            asserts: e.asserts.to_string(),
            refs: (e.cves.as_slice().iter())
                .chain(e.anchors.as_slice())
                .map(|s| s.to_string())
                .collect(),
        })
        .collect();
    for c in cols {
        for e in experiments_of(&c.report) {
            let id = text(&e["id"]);
            if !id.is_empty() && !rows.iter().any(|r| r.id == id) {
                let section = text(&e["section"]);
                rows.push(Row {
                    id,
                    section,
                    asserts: "(not in this build's catalogue)".into(),
                    refs: refs_of(e),
                });
            }
        }
    }
    rows
}

fn section_title(key: &str) -> String {
    Section::ALL
        .iter()
        .find(|s| s.key() == key)
        .map_or_else(|| key.to_string(), |s| s.title().to_string())
}

fn column_meta(c: &Column) -> Value {
    let host = &c.report["host"];
    let layout = host["cgroup"]["layout"].as_str().unwrap_or("?");
    let docker = if host["docker_stack"].is_object() {
        crate::enginestack::label(&host["docker_stack"])
    } else {
        host["docker"]
            .as_str()
            .map_or_else(|| "no engine".to_string(), |v| format!("docker {v}"))
    };
    json!({
        "label": c.label,
        "kernel": text(&host["kernel"]),
        "cgroup": layout,
        "docker": docker,
    })
}

/// A cell with `facts`: its observations flattened and reduced as `isocheck
/// diff` and `matrix` compare them (`report::stable`: no pids, namespace
/// inodes, run-unique names, timings or control values), so that "changed
/// against the baseline" means the same on the page as on the terminal.
/// `measurements` never enter it.
fn with_facts(e: &Value) -> Value {
    let mut flat = std::collections::BTreeMap::new();
    if let Some(obs) = e["observations"].as_object() {
        for (k, v) in obs {
            crate::report::flatten(k, v, &mut flat);
        }
    }
    let facts: Map<String, Value> = flat
        .into_iter()
        .filter_map(|(k, v)| {
            crate::report::stable(&k, &v).map(|v| (k, Value::String(v.to_string())))
        })
        .collect();
    let mut e = e.clone();
    e["facts"] = Value::Object(facts);
    e
}

/// Everything the script needs, keyed by experiment id then column index.
fn data(cols: &[Column], rows: &[Row]) -> Value {
    let mut cells = Map::new();
    for r in rows {
        let per_col: Vec<Value> = cols
            .iter()
            .map(|c| {
                experiments_of(&c.report)
                    .iter()
                    .find(|e| e["id"] == r.id.as_str())
                    .map(with_facts)
                    .unwrap_or(Value::Null)
            })
            .collect();
        cells.insert(r.id.clone(), Value::Array(per_col));
    }
    let asserts: Map<String, Value> = rows
        .iter()
        .map(|r| (r.id.clone(), Value::String(r.asserts.clone())))
        .collect();
    json!({
        "columns": cols.iter().map(column_meta).collect::<Vec<_>>(),
        "asserts": asserts,
        "cells": cells,
    })
}

/// A JSON status word in the matrix's short form (`Status::cell`, the one
/// place statuses are spelled); an unknown word is a dash.
fn short(status: &str) -> &'static str {
    serde_json::from_value::<Status>(Value::String(status.to_string())).map_or("—", Status::cell)
}

/// "57 pass · 1 FAIL · 1 ign", coloured, for a column's header.
fn counts(report: &Value) -> String {
    ["passed", "failed", "broken", "ignored"]
        .iter()
        .filter_map(|s| {
            let n = experiments_of(report)
                .iter()
                .filter(|e| e["status"] == *s)
                .count();
            (n > 0).then(|| format!("<span class=\"s-{s}\">{n} {}</span>", short(s)))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn header(out: &mut String, cols: &[Column]) {
    out.push_str("<thead><tr><th class=\"exp\">experiment</th>");
    for (i, c) in cols.iter().enumerate() {
        let m = column_meta(c);
        let _ = write!(
            out,
            "<th class=\"col\" data-col=\"{i}\"><div class=\"label\">{}</div>\
             <div class=\"meta\">kernel {}<br>cgroup {}<br>{}</div>\
             <div class=\"counts\">{}</div></th>",
            escape(&c.label),
            escape(&text(&m["kernel"])),
            escape(&text(&m["cgroup"])),
            escape(&text(&m["docker"])),
            counts(&c.report)
        );
    }
    out.push_str("</tr></thead>\n");
}

fn body_row(out: &mut String, r: &Row, cols: &[Column]) {
    let refs = if r.refs.is_empty() {
        String::new()
    } else {
        format!("<div class=\"refs\">{}</div>", escape(&r.refs.join(" · ")))
    };
    let _ = write!(
        out,
        "<tr class=\"exp-row\" data-id=\"{0}\"><td class=\"exp\"><code>{0}</code>\
         {refs}<div class=\"asserts\">{1}</div></td>",
        escape(&r.id),
        escape(&r.asserts)
    );
    for (i, c) in cols.iter().enumerate() {
        let e = experiments_of(&c.report)
            .iter()
            .find(|e| e["id"] == r.id.as_str());
        let status = e.map_or_else(|| "absent".to_string(), |e| text(&e["status"]));
        let _ = write!(
            out,
            "<td class=\"cell s-{0}\" data-col=\"{i}\" data-status=\"{0}\" tabindex=\"0\">{1}</td>",
            escape(&status),
            short(&status)
        );
    }
    out.push_str("</tr>\n");
}

fn table(cols: &[Column], rows: &[Row]) -> String {
    let mut out = String::from("<table id=\"matrix\">\n");
    header(&mut out, cols);
    out.push_str("<tbody>\n");
    let mut last = None;
    for r in rows {
        if last != Some(&r.section) {
            let _ = writeln!(
                out,
                "<tr class=\"section\"><th colspan=\"{}\">{}</th></tr>",
                cols.len() + 1,
                escape(&section_title(&r.section))
            );
            last = Some(&r.section);
        }
        body_row(&mut out, r, cols);
    }
    out.push_str("</tbody></table>\n");
    out
}

/// The page: one row per experiment of `catalogue` (the registry,
/// `experiments::all()`: passed in, since the harness layer sits below the
/// sections). JSON inside `<script>` cannot contain `</script>`: every `<`
/// is written as `\u003c`, which JSON.parse reads back unchanged.
pub fn render(catalogue: &[&Experiment], cols: &[Column]) -> String {
    let rows = rows(catalogue, cols);
    let blob = data(cols, &rows).to_string().replace('<', "\\u003c");
    let options: String = cols
        .iter()
        .enumerate()
        .map(|(i, c)| format!("<option value=\"{i}\">{}</option>", escape(&c.label)))
        .collect();
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>isocheck: {n} experiments × {m} reports</title>\n<style>{CSS}</style></head>\n\
         <body>\n<header><h1>isocheck</h1><span>{n} experiments × {m} reports</span>\
         <label>baseline <select id=\"baseline\">{options}</select></label>\
         <span class=\"legend\"><b class=\"s-passed\">pass</b><b class=\"s-failed\">FAIL</b>\
         <b class=\"s-broken\">BROKEN broken</b><b class=\"s-ignored\">ign ignored</b>\
         <b class=\"s-absent\">— not in report</b><b class=\"changed\">facts differ from baseline</b></span></header>\n\
         <main><div id=\"scroll\">{table}</div>\n\
         <aside id=\"details\" hidden><button id=\"close\" aria-label=\"close\">×</button><div id=\"content\"></div></aside></main>\n\
         <script type=\"application/json\" id=\"data\">{blob}</script>\n<script>{JS}</script>\n</body></html>\n",
        n = rows.len(),
        m = cols.len(),
        table = table(cols, &rows)
    )
}
