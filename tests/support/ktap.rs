//! A KTAP version 1 parser that follows the kernel's
//! Documentation/dev-tools/ktap.rst: version lines (a subtest starts with its
//! own), plan lines `1..N`, result lines
//! `<result> <number> [<description>][ # [<directive>] [<diagnostic data>]]`,
//! diagnostic lines `# …`, unknown lines (allowed anywhere, ignored), and
//! nesting by two spaces per level, ending before the parent's result line.

#[derive(Debug, Clone, PartialEq)]
pub struct Test {
    pub ok: bool,
    pub number: usize,
    pub name: String,
    pub directive: Option<String>,
    pub diagnostic: String,
    /// Diagnostic lines at this level just before the result line.
    pub notes: Vec<String>,
    pub subtests: Option<Suite>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Suite {
    pub version: String,
    pub plan: Option<usize>,
    pub tests: Vec<Test>,
}

const DIRECTIVES: &[&str] = &["SKIP", "TODO", "XFAIL", "TIMEOUT", "ERROR"];

fn version(s: &str) -> Option<&str> {
    ["KTAP version 1", "TAP version 13", "TAP version 14"]
        .into_iter()
        .find(|v| s == *v)
}

fn plan(s: &str) -> Option<usize> {
    s.strip_prefix("1..")?.parse().ok()
}

/// A result line, or None when the line is not one.
pub fn result(s: &str) -> Option<Result<Test, String>> {
    let (ok, rest) = if let Some(r) = s.strip_prefix("not ok ") {
        (false, r)
    } else {
        (true, s.strip_prefix("ok ")?)
    };
    let (num, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let number: usize = match num.parse() {
        Ok(n) => n,
        Err(_) => return Some(Err(format!("result line without a number: {s:?}"))),
    };
    let (name, after) = match rest.split_once('#') {
        Some((n, a)) => (n.trim(), Some(a.trim())),
        None => (rest.trim(), None),
    };
    let (directive, diagnostic) = match after {
        None => (None, String::new()),
        Some(a) => {
            let (word, more) = a.split_once(' ').unwrap_or((a, ""));
            if DIRECTIVES.contains(&word) {
                (Some(word.to_string()), more.trim().to_string())
            } else {
                (None, a.to_string())
            }
        }
    };
    Some(Ok(Test {
        ok,
        number,
        name: name.to_string(),
        directive,
        diagnostic,
        notes: Vec::new(),
        subtests: None,
    }))
}

struct Lines<'a> {
    lines: Vec<(usize, &'a str)>,
    pos: usize,
}

fn structural(s: &str) -> bool {
    version(s).is_some() || plan(s).is_some() || result(s).is_some() || s.starts_with('#')
}

fn suite(ls: &mut Lines, level: usize) -> Result<Suite, String> {
    let at = level * 2;
    let (_, first) = ls.lines[ls.pos];
    let v = version(first).ok_or("no version line")?.to_string();
    ls.pos += 1;
    let mut s = Suite {
        version: v,
        plan: None,
        tests: Vec::new(),
    };
    if let Some(&(ind, l)) = ls.lines.get(ls.pos) {
        if ind == at && plan(l).is_some() {
            s.plan = plan(l);
            ls.pos += 1;
        }
    }
    let (mut notes, mut sub) = (Vec::new(), None);
    while let Some(&(ind, l)) = ls.lines.get(ls.pos) {
        if ind == at + 2 && version(l).is_some() {
            if sub.is_some() {
                return Err(format!(
                    "two subtests before one result line (line {})",
                    ls.pos + 1
                ));
            }
            sub = Some(suite(ls, level + 1)?);
            continue;
        }
        if ind < at && structural(l) {
            break;
        }
        ls.pos += 1;
        if ind != at {
            continue; // unknown line, or indented diagnostic of no test
        }
        if let Some(r) = result(l) {
            let mut t = r?;
            t.notes = std::mem::take(&mut notes);
            t.subtests = sub.take();
            s.tests.push(t);
        } else if let Some(d) = l.strip_prefix('#') {
            notes.push(d.trim().to_string());
        } else if version(l).is_some() || plan(l).is_some() {
            return Err(format!("misplaced {l:?} at line {}", ls.pos));
        }
    }
    if sub.is_some() {
        return Err("a subtest ends without its parent's result line".into());
    }
    check_numbers(&s)?;
    Ok(s)
}

fn check_numbers(s: &Suite) -> Result<(), String> {
    for (i, t) in s.tests.iter().enumerate() {
        if t.number != i + 1 {
            return Err(format!(
                "test {:?} has number {}, expected {}",
                t.name,
                t.number,
                i + 1
            ));
        }
        if t.name.contains('#') {
            return Err(format!("description {:?} contains #", t.name));
        }
    }
    match s.plan {
        Some(n) if n != s.tests.len() => Err(format!("plan 1..{n} but {} results", s.tests.len())),
        _ => Ok(()),
    }
}

/// Parses a whole KTAP document: leading unknown lines are skipped, the
/// first structural line must be a version line, and nothing structural may
/// follow the top-level suite.
pub fn parse(text: &str) -> Result<Suite, String> {
    let lines: Vec<(usize, &str)> = text
        .lines()
        .map(|l| (l.len() - l.trim_start_matches(' ').len(), l.trim()))
        .collect();
    let start = lines
        .iter()
        .position(|(_, l)| structural(l))
        .ok_or("no KTAP lines")?;
    if lines[start].0 != 0 || version(lines[start].1).is_none() {
        return Err(format!(
            "the output does not start with a version line: {:?}",
            lines[start].1
        ));
    }
    let mut ls = Lines { lines, pos: start };
    let s = suite(&mut ls, 0)?;
    if let Some((_, l)) = ls.lines[ls.pos..].iter().find(|(_, l)| structural(l)) {
        return Err(format!("structural line after the top-level suite: {l:?}"));
    }
    Ok(s)
}

/// The specification's "should" rules: a parent fails when a subtest fails
/// (skips do not count), and TIMEOUT and ERROR results are "not ok".
pub fn check_rules(s: &Suite) -> Vec<String> {
    let mut out = Vec::new();
    for t in &s.tests {
        if let Some(sub) = &t.subtests {
            let failed = sub
                .tests
                .iter()
                .any(|c| !c.ok && c.directive.as_deref() != Some("SKIP"));
            if failed && t.ok {
                out.push(format!("{} is ok although a subtest failed", t.name));
            }
            out.extend(check_rules(sub));
        }
        if matches!(t.directive.as_deref(), Some("TIMEOUT" | "ERROR")) && t.ok {
            out.push(format!("{} is ok with directive {:?}", t.name, t.directive));
        }
    }
    out
}
