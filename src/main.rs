//! `isocheck`: run the isolation experiments, list them, check the host, and
//! compare two reports.

use clap::{Parser, Subcommand};
use isocheck::experiment::{Experiment, Section};
use isocheck::host::HostFacts;
use isocheck::needs::{Need, Tool};
use isocheck::report::{self, Report};
use isocheck::session::Session;
use isocheck::{cleanup, experiments, formats, runner};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "isocheck",
    version,
    about = "Executable checks of Linux isolation: namespaces, cgroups, seccomp, and how Docker uses them",
    long_about = "Runs the experiments of the 'Docker Deep-dive' workshop as assertions against the \
running kernel. Each experiment creates its own namespaces, cgroups and mounts with run-unique names \
and removes them afterwards; network experiments stay inside namespaces the suite creates. Most \
experiments need root.\n\nExit status: 0 when nothing failed or broke, 1 when something did (or, for \
`diff`, when a regression is found), 2 on bad usage."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run experiments, print a table grouped by seed section, write a JSON report
    Run {
        /// Only experiments whose id starts with PREFIX (repeatable; e.g. `pid.`, `net.veth`)
        #[arg(long = "filter", value_name = "PREFIX")]
        filters: Vec<String>,
        /// Write the JSON report to FILE
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Experiments run in parallel (default: the number of CPUs)
        #[arg(long, value_name = "N")]
        jobs: Option<usize>,
        #[command(flatten)]
        out: RunOutputArgs,
        /// Time limit of each experiment run, teardown included (default: 30,
        /// more for a few slow ones; env ISOCHECK_TIMEOUT). At the limit its
        /// processes are killed, its resources removed, and it is broken.
        #[arg(long, value_name = "SECS")]
        timeout: Option<f64>,
    },
    /// List every experiment: id, section, needs, and whether this host meets them
    List {
        /// Print the README's table of experiments instead (Markdown)
        #[arg(long, conflicts_with_all = ["cve", "coverage", "kconfig"])]
        markdown: bool,
        /// Print docs/coverage.md instead: the upstream suites' tests each row follows
        #[arg(long, conflicts_with = "cve")]
        coverage: bool,
        /// List the CVEs the rows guard, each row with a verdict: from --report
        /// when given (a run's statuses and controls), otherwise only whether
        /// this host meets the row's needs (a listing runs nothing)
        #[arg(long)]
        cve: bool,
        /// With --cve: the report (`isocheck run --json FILE`) to take verdicts from
        #[arg(long, value_name = "REPORT.json", requires = "cve")]
        report: Option<PathBuf>,
        /// Print the CONFIG_ fragment every row needs (ci/kernel/isocheck.config)
        #[arg(long)]
        kconfig: bool,
    },
    /// Show what the host offers and, for each missing need, what provides it
    Doctor,
    /// Compare two reports: status changes first, then changed facts (never measurements)
    Diff {
        #[arg(value_name = "OLD.json")]
        old: PathBuf,
        #[arg(value_name = "NEW.json")]
        new: PathBuf,
    },
    /// One table over several reports (e.g. one per kernel): experiments x reports
    Matrix {
        /// Reports, each optionally labelled: LABEL=FILE (default label: the report's kernel)
        #[arg(value_name = "[LABEL=]REPORT.json", required = true, num_args = 1..)]
        reports: Vec<String>,
    },
    /// One self-contained HTML page over one or many reports (no network, no external assets)
    Report {
        /// Reports, each optionally labelled: LABEL=FILE (default label: the report's kernel)
        #[arg(value_name = "[LABEL=]REPORT.json", required = true, num_args = 1..)]
        reports: Vec<String>,
        /// Where to write the page
        #[arg(long, value_name = "OUT.html", required = true)]
        html: PathBuf,
    },
    /// Single-threaded child operations the experiments run (internal)
    #[command(hide = true)]
    Helper {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// The outputs and gates of `run` beyond the JSON report.
#[derive(clap::Args)]
struct RunOutputArgs {
    /// Write KTAP version 1 to FILE (`-`: stdout; the table then goes to stderr)
    #[arg(long, value_name = "FILE|-")]
    ktap: Option<PathBuf>,
    /// Write JUnit XML to FILE (one testcase per experiment; ignored = skipped)
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Leave out experiments whose id starts with PREFIX (repeatable; e.g. `docker.`)
    #[arg(long = "skip", value_name = "PREFIX")]
    skip: Vec<String>,
    /// Ignored experiments fail the run (exit 1), except those allowed
    #[arg(long)]
    fail_on_ignored: bool,
    /// With --fail-on-ignored: ignored experiments whose id starts with PREFIX are fine (repeatable)
    #[arg(
        long = "allow-ignored",
        value_name = "PREFIX",
        requires = "fail_on_ignored"
    )]
    allow_ignored: Vec<String>,
}

fn usage_error(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("isocheck: {msg}");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    // The helper must stay single-threaded: dispatch before anything else.
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("helper") {
        return ExitCode::from(isocheck::helper::main(&argv[2..]) as u8);
    }
    let cli = Cli::parse();
    if !matches!(cli.cmd, Cmd::Run { .. }) {
        // `isocheck diff A B | head -1`: a closed pipe ends the program
        // quietly, as it does `cat`. (`run` keeps ignoring SIGPIPE: it must
        // never die before its cleanup, and it writes with `let _ =`.)
        // SAFETY: no other thread exists yet; SIG_DFL is always valid.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    match cli.cmd {
        Cmd::Run {
            filters,
            json,
            jobs,
            out,
            timeout,
        } => match RunPlan::new(&filters, json, jobs, out, timeout) {
            Ok(plan) => cmd_run(&plan),
            Err(usage) => usage_error(usage),
        },
        Cmd::List { kconfig: true, .. } => {
            print!("{}", isocheck::kconfig::fragment(row_kconfig()));
            ExitCode::SUCCESS
        }
        Cmd::List { markdown: true, .. } => {
            print!("{}", markdown_table());
            ExitCode::SUCCESS
        }
        Cmd::List { coverage: true, .. } => {
            print!("{}", isocheck::coverage::markdown());
            ExitCode::SUCCESS
        }
        Cmd::List {
            cve: true, report, ..
        } => cmd_list_cve(report.as_deref()),
        Cmd::List { .. } => cmd_list(),
        Cmd::Doctor => cmd_doctor(),
        Cmd::Diff { old, new } => cmd_diff(&old, &new),
        Cmd::Matrix { reports } => cmd_matrix(&reports),
        Cmd::Report { reports, html } => cmd_report(&reports, &html),
        Cmd::Helper { .. } => unreachable!("dispatched above"),
    }
}

/// Levenshtein distance, for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push(
                (prev[j] + usize::from(ca != *cb))
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1),
            );
        }
        prev = cur;
    }
    prev[b.len()]
}

fn closest(prefix: &str, ids: &[&str]) -> Vec<String> {
    let mut scored: Vec<(usize, &str)> = ids
        .iter()
        .map(|id| {
            let head: String = id.chars().take(prefix.chars().count()).collect();
            (distance(prefix, &head).min(distance(prefix, id)), *id)
        })
        .collect();
    scored.sort();
    scored
        .into_iter()
        .take(3)
        .map(|(_, id)| id.to_string())
        .collect()
}

fn select(filters: &[String]) -> Result<Vec<&'static Experiment>, String> {
    let all = experiments::all();
    let ids: Vec<&str> = all.iter().map(|e| e.id).collect();
    let pending = experiments::pending();
    for f in filters {
        if !ids.iter().any(|id| id.starts_with(f.as_str())) {
            if pending.iter().any(|id| id.starts_with(f.as_str())) {
                return Err(format!(
                    "{f:?} names only catalogue rows that are not built yet (fixtures/catalogue-pending.txt)"
                ));
            }
            return Err(format!(
                "no experiment id starts with {f:?}; closest: {} (see `isocheck list`)",
                closest(f, &ids).join(", ")
            ));
        }
    }
    Ok(all
        .into_iter()
        .filter(|e| filters.is_empty() || filters.iter().any(|f| e.id.starts_with(f.as_str())))
        .collect())
}

/// What `isocheck run` was asked to do, checked before anything runs (a bad
/// argument or an unwritable report path costs no run).
struct RunPlan {
    selected: Vec<&'static Experiment>,
    json: Option<PathBuf>,
    jobs: usize,
    limit: Option<std::time::Duration>,
    outputs: formats::Outputs,
}

impl RunPlan {
    fn new(
        filters: &[String],
        json: Option<PathBuf>,
        jobs: Option<usize>,
        args: RunOutputArgs,
        timeout: Option<f64>,
    ) -> Result<RunPlan, String> {
        let limit = match timeout {
            Some(s) if !(s > 0.0 && s.is_finite()) => {
                return Err("--timeout must be a positive number of seconds".into())
            }
            t => t.map(std::time::Duration::from_secs_f64),
        };
        let mut selected = select(filters)?;
        // A --skip prefix that matches nothing is a typo, as for --filter.
        select(&args.skip).map_err(|e| e.replace("no experiment", "--skip: no experiment"))?;
        selected.retain(|e| !args.skip.iter().any(|p| e.id.starts_with(p.as_str())));
        let outputs = formats::Outputs {
            ktap: args.ktap,
            junit: args.junit,
            fail_on_ignored: args.fail_on_ignored,
            allow_ignored: args.allow_ignored,
        };
        for p in json.iter().map(PathBuf::as_path).chain(outputs.files()) {
            check_writable(p)?;
        }
        if jobs == Some(0) {
            return Err("--jobs must be at least 1".into());
        }
        let jobs =
            jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
        Ok(RunPlan {
            selected,
            json,
            jobs,
            limit,
            outputs,
        })
    }
}

fn cmd_run(plan: &RunPlan) -> ExitCode {
    let session = Session::start(plan.limit);
    announce(plan, HostFacts::get());
    let total = plan.selected.len();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let progress = |r: &report::ExperimentResult| {
        let n = done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        eprintln!("[{n:>3}/{total}] {}", report::line(r).trim_start());
    };
    let durations = runner::load_durations();
    let results = runner::run_all(&plan.selected, plan.jobs, &durations, &progress);
    if cleanup::interrupted().is_none() {
        runner::save_durations(&results);
    }
    let ended = session.finish();
    // With `--ktap -` stdout carries KTAP only.
    let mut out: Box<dyn Write> = if plan.outputs.ktap_to_stdout() {
        Box::new(std::io::stderr().lock())
    } else {
        Box::new(std::io::stdout().lock())
    };
    let _ = write!(out, "\n{}", report::table(&results));
    let _ = writeln!(out, "wall time {:.2} s", ended.wall.as_secs_f64());
    let rep = ended.report(results);
    if let Some(p) = &plan.json {
        let text = serde_json::to_string_pretty(&rep).unwrap_or_default();
        if let Err(e) = isocheck::owner::write(p, text) {
            eprintln!("isocheck: cannot write report {}: {e}", p.display());
            return ExitCode::from(2);
        }
        let _ = writeln!(out, "report written to {}", p.display());
    }
    if let Some(sig) = ended.interrupted {
        let _ = writeln!(
            out,
            "interrupted by signal {sig}: only the {} experiments that finished before it are listed",
            rep.experiments.len()
        );
        return ExitCode::from(128 + sig as u8);
    }
    write_outputs(&plan.outputs, &rep, &mut out)
}

/// The run's first lines on stderr: what is about to run, on what host.
fn announce(plan: &RunPlan, host: &HostFacts) {
    if !host.is_root {
        let n = plan
            .selected
            .iter()
            .filter(|e| e.needs.contains(&Need::Root))
            .count();
        eprintln!(
            "isocheck: not running as root: {n} of {} experiments need root and will be ignored; \
             run `sudo isocheck run` (or ci/isocheck run)",
            plan.selected.len()
        );
    }
    eprintln!(
        "isocheck: kernel {}, cgroup {}, {} experiments on {} jobs (run {})",
        host.kernel,
        host.cgroup.layout,
        plan.selected.len(),
        plan.jobs,
        cleanup::run_id()
    );
}

/// KTAP, JUnit and the --fail-on-ignored gate of a finished run; its exit
/// status.
fn write_outputs(outputs: &formats::Outputs, rep: &Report, out: &mut dyn Write) -> ExitCode {
    match outputs.write(rep) {
        Ok(lines) => lines.iter().for_each(|l| {
            let _ = writeln!(out, "{l}");
        }),
        Err(e) => {
            eprintln!("isocheck: {e}");
            return ExitCode::from(2);
        }
    }
    let lost = outputs.unallowed_ignored(&rep.experiments);
    for r in &lost {
        let _ = writeln!(
            out,
            "isocheck: --fail-on-ignored: {} ignored: {}",
            r.id,
            r.reason.as_deref().unwrap_or("")
        );
    }
    if report::Counts::of(&rep.experiments).ok() && lost.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Fails (with the reason) unless the report can be written to `p`: checked
/// before the run, so a bad path costs no run. The probe file is removed
/// again; an existing report is opened for append, so it stays as it was.
fn check_writable(p: &std::path::Path) -> Result<(), String> {
    let why =
        |e: &dyn std::fmt::Display| format!("cannot write the report to {}: {e}", p.display());
    if p.is_dir() {
        return Err(why(&"it is a directory"));
    }
    let dir = p.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(d) = dir.filter(|d| !d.is_dir()) {
        return Err(why(&format!("directory {} does not exist", d.display())));
    }
    let existed = p.exists();
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(p)
        .map_err(|e| why(&e))?;
    if !existed {
        let _ = std::fs::remove_file(p);
    }
    // A full disk lets an empty file be made; ask for a page's worth.
    let d = dir.unwrap_or(std::path::Path::new("."));
    match nix::sys::statvfs::statvfs(d) {
        Ok(v) if v.blocks_available().saturating_mul(v.fragment_size()) < 1 << 20 => {
            Err(why(&"less than 1 MiB free on its file system"))
        }
        _ => Ok(()),
    }
}

/// The README's "what is tested" table, generated from the registry.
fn markdown_table() -> String {
    let mut out = String::new();
    for sec in isocheck::experiment::Section::ALL {
        let exps = experiments::of_section(*sec);
        if exps.is_empty() {
            continue;
        }
        out.push_str(&format!(
            "\n#### {}\n| id | asserts | control | needs |\n|---|---|---|---|\n",
            sec.title()
        ));
        for e in exps {
            let needs: Vec<String> = e.needs.iter().map(|n| format!("`{n}`")).collect();
            out.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                e.id,
                e.asserts.replace('|', "\\|"),
                e.control.unwrap_or("—").replace('|', "\\|"),
                needs.join(" ")
            ));
        }
    }
    out
}

fn cmd_list() -> ExitCode {
    let host = HostFacts::get();
    let mut out = std::io::stdout().lock();
    let pending = experiments::pending();
    for id in experiments::catalogue_ids() {
        if pending.contains(&id) {
            let section = Section::of_id(id).map_or("?", |s| s.key());
            let _ = writeln!(out, "{id:<44} {section:<9} not built yet");
            continue;
        }
        let Some(exp) = experiments::find(id) else {
            continue;
        };
        let needs: Vec<String> = exp.needs.iter().map(|n| n.to_string()).collect();
        let meets = match exp.unmet(host) {
            None => "runnable".to_string(),
            Some(why) => format!("ignored: {why}"),
        };
        let _ = writeln!(
            out,
            "{:<44} {:<9} needs [{}] {}\n    {}",
            exp.id,
            exp.section.key(),
            needs.join(", "),
            meets,
            exp.asserts
        );
        let mut refs = Vec::new();
        if !exp.cves.as_slice().is_empty() {
            refs.push(format!("guards {}", exp.cves.as_slice().join(", ")));
        }
        if !exp.anchors.as_slice().is_empty() {
            refs.push(format!("follows {}", exp.anchors.as_slice().join(", ")));
        }
        if !refs.is_empty() {
            let _ = writeln!(out, "    {}", refs.join("; "));
        }
    }
    ExitCode::SUCCESS
}

fn cmd_list_cve(report: Option<&std::path::Path>) -> ExitCode {
    let rep = match report.map(Report::load).transpose() {
        Ok(r) => r,
        Err(e) => return usage_error(e),
    };
    print!(
        "{}",
        isocheck::coverage::cve_list(rep.as_ref(), rep.is_none().then(HostFacts::get))
    );
    ExitCode::SUCCESS
}

fn cmd_doctor() -> ExitCode {
    let host = HostFacts::get();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "kernel        {}", host.kernel);
    let _ = writeln!(
        out,
        "root          {}",
        if host.is_root {
            "yes"
        } else {
            "no (most experiments need sudo)"
        }
    );
    let _ = writeln!(
        out,
        "cgroup        layout {}, v1 {:?}, v2 {:?}",
        host.cgroup.layout, host.cgroup.v1, host.cgroup.v2
    );
    let _ = writeln!(
        out,
        "user ns       {}",
        host.userns_blocked.as_deref().unwrap_or("allowed")
    );
    let _ = writeln!(
        out,
        "docker        {}",
        host.docker.as_deref().map_or_else(
            || host.docker_reason.clone().unwrap_or_default(),
            |v| format!("engine {v}")
        )
    );
    let _ = writeln!(out, "page size     {}", host.page_size);
    doctor_kconfig(host, &mut out);
    doctor_tools(host, &mut out);
    doctor_unmet(host, &mut out);
    ExitCode::SUCCESS
}

/// Every `kconfig:` need of the registry's rows.
fn row_kconfig() -> Vec<&'static str> {
    let needs = experiments::all().into_iter().flat_map(|e| e.needs.iter());
    needs
        .filter_map(|n| match n {
            Need::Kconfig(o) => Some(*o),
            _ => None,
        })
        .collect()
}

/// `doctor`'s kernel config: where it was read, and the fragment's options
/// this kernel lacks (or that nothing could be read, so probes decide).
fn doctor_kconfig(host: &HostFacts, out: &mut dyn Write) {
    let Some(cfg) = &host.kconfig else {
        let tried: Vec<String> = isocheck::kconfig::candidates(&host.kernel)
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let _ = writeln!(
            out,
            "kconfig       none readable ({}): kconfig needs count as met, the runtime probes decide",
            tried.join(", ")
        );
        return;
    };
    let lacking: Vec<&str> = isocheck::kconfig::fragment_options(row_kconfig())
        .into_iter()
        .filter(|o| !cfg.enabled(o))
        .collect();
    let _ = writeln!(
        out,
        "kconfig       {} ({} options set)",
        cfg.source,
        cfg.len()
    );
    let _ = if lacking.is_empty() {
        writeln!(out, "  every option of ci/kernel/isocheck.config is set")
    } else {
        writeln!(
            out,
            "  not set here, wanted by ci/kernel/isocheck.config: {}",
            lacking.join(" ")
        )
    };
}

/// `doctor`'s tools: each one's version, or the package that provides it.
fn doctor_tools(host: &HostFacts, out: &mut dyn Write) {
    let _ = writeln!(out, "tools:");
    let versions = host.all_tool_versions();
    for t in Tool::ALL {
        match versions.get(t.command()) {
            Some(v) => {
                let _ = writeln!(out, "  {:<20} {v}", t.command());
            }
            None => {
                let _ = writeln!(
                    out,
                    "  {:<20} missing: apt-get install {}",
                    t.command(),
                    t.package()
                );
            }
        }
    }
}

/// `doctor`'s unmet needs over every experiment, each named once with why.
fn doctor_unmet(host: &HostFacts, out: &mut dyn Write) {
    let mut unmet: Vec<(String, String)> = Vec::new();
    for exp in experiments::all() {
        for n in exp.needs {
            if let Some(why) = n.unmet(host) {
                if !unmet.iter().any(|(k, _)| *k == n.to_string()) {
                    unmet.push((n.to_string(), why));
                }
            }
        }
    }
    let _ = writeln!(out, "unmet needs:");
    if unmet.is_empty() {
        let _ = writeln!(out, "  none: every experiment can run here");
    }
    for (n, why) in unmet {
        let _ = writeln!(out, "  {n:<20} {why}");
    }
}

fn cmd_matrix(args: &[String]) -> ExitCode {
    let mut cols = Vec::new();
    for a in args {
        let (label, path) = match a.split_once('=') {
            Some((l, p)) => (Some(l.to_string()), p),
            None => (None, a.as_str()),
        };
        match Report::load(std::path::Path::new(path)) {
            Ok(r) => cols.push((label.unwrap_or_else(|| r.host.kernel.clone()), r)),
            Err(e) => return usage_error(e),
        }
    }
    print!("{}", report::matrix(&cols));
    ExitCode::SUCCESS
}

fn cmd_report(args: &[String], html: &std::path::Path) -> ExitCode {
    let mut cols = Vec::new();
    for a in args {
        let (label, path) = match a.split_once('=') {
            Some((l, p)) => (Some(l.to_string()), std::path::Path::new(p)),
            None => (None, std::path::Path::new(a.as_str())),
        };
        // Typed load for its checks and messages; the page reads the raw JSON
        // so that fields this build does not know still show.
        let kernel = match Report::load(path) {
            Ok(r) => r.host.kernel,
            Err(e) => return usage_error(e),
        };
        let raw = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        cols.push(formats::html::Column {
            label: label.unwrap_or(kernel),
            report: raw,
        });
    }
    let page = formats::html::render(&experiments::all(), &cols);
    if let Err(e) = isocheck::owner::write(html, page) {
        return usage_error(format!("cannot write {}: {e}", html.display()));
    }
    println!("HTML report written to {}", html.display());
    ExitCode::SUCCESS
}

fn cmd_diff(old: &PathBuf, new: &PathBuf) -> ExitCode {
    let (a, b) = match (Report::load(old), Report::load(new)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return usage_error(e),
    };
    let d = report::diff(&a, &b);
    let name = |r: &Report, p: &PathBuf| {
        if r.host.kernel.is_empty() {
            p.display().to_string()
        } else {
            format!("{} ({})", p.display(), r.host.kernel)
        }
    };
    print!(
        "{}",
        report::render_diff(&d, &name(&a, old), &name(&b, new))
    );
    print!(
        "{}",
        isocheck::enginestack::render_changes(
            a.host.docker_stack.as_ref(),
            b.host.docker_stack.as_ref()
        )
    );
    if d.regressions() > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
