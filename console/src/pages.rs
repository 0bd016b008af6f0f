//! The console's pages, rendered on the server with maud (which escapes
//! every interpolated value). Plots are the experiments' SVG line plots,
//! inlined; the only script is the live-refresh file from [`crate::assets`].

use fedsoc_experiments::plot::{Series, lines_svg};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::source::{
    FederationView, ProofCheck, RecentRound, RoundDetail, RoundRow, RoundsView, RowState,
    VerifyView,
};

/// Which navigation link is the current page.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Federation,
    Rounds,
    Verify,
}

fn layout(title: &str, here: Nav, body: Markup) -> Markup {
    let link = |href: &str, label: &str, page: Nav| {
        html! { a href=(href) class=[(page == here).then_some("here")] { (label) } }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · fedsoc console" }
                link rel="stylesheet" href="/static/console.css";
                script src="/static/console.js" defer {}
            }
            body {
                header {
                    span.brand { "fedsoc console" }
                    nav {
                        (link("/", "Federation", Nav::Federation)) " "
                        (link("/rounds", "Rounds", Nav::Rounds)) " "
                        (link("/verify", "Verify", Nav::Verify))
                    }
                    span.note { "read-only" }
                }
                main { (body) }
            }
        }
    }
}

fn short(hash: &str) -> &str {
    hash.get(..16).unwrap_or(hash)
}

fn age(s: f64) -> String {
    if s < 60.0 {
        format!("{s:.0} s")
    } else {
        format!("{:.1} min", s / 60.0)
    }
}

fn running_line(f: &FederationView) -> String {
    match &f.running {
        Some(r) => {
            let mut line = format!(
                "round {} ({}, attempt {}): stage {} for {}, round for {}; members {}",
                r.round,
                r.kind,
                r.attempt,
                r.stage,
                age(r.stage_age_s),
                age(r.round_age_s),
                r.members.join(", ")
            );
            if !r.dropped.is_empty() {
                line.push_str(&format!("; dropped {}", r.dropped.join("; ")));
            }
            line
        }
        None => "no round running".into(),
    }
}

/// `/`: the roster, who is online, the running round (refreshed live).
pub fn federation(
    live: Option<&Result<FederationView, String>>,
    log_roster: Option<&(String, Vec<String>)>,
) -> Markup {
    let body = html! {
        h1 { "Federation" }
        @match live {
            Some(Ok(f)) => {
                section #live data-refreshed="0" {
                    h2 { "Federation " code #federation-name { (f.federation) } }
                    p {
                        "Completed rounds: " strong #completed { (f.completed_rounds) }
                        " · queued: " strong #queued { (f.queued_rounds) }
                        " · " span #online-count {
                            (f.roster.iter().filter(|m| m.online).count()) " of " (f.roster.len())
                            " online, a round needs " (f.min_participants)
                        }
                    }
                    ul.roster #roster {
                        @for m in &f.roster {
                            li class=(if m.online { "online" } else { "offline" }) data-member=(m.id) {
                                (if m.online { "● " } else { "○ " }) (m.id)
                                (if m.online { " online" } else { " offline" })
                            }
                        }
                    }
                    h2 { "Running now" }
                    p #running { (running_line(f)) }
                    p.bad #halted { @if let Some(h) = &f.halted { "HALTED: " (h) } }
                    p.note { span #updated { "as of page load" } " · " span.bad #live-error {} }
                }
            }
            Some(Err(e)) => {
                section #live data-refreshed="0" {
                    h2 { "Live status" }
                    p.bad #live-error { "The coordinator's admin service cannot be read: " (e) }
                    p.note { "The page retries every two seconds." span #updated {} }
                    ul.roster #roster {}
                    p #running {}
                }
            }
            None => {
                section {
                    h2 { "Live status" }
                    p.note { "Not connected: start the console with --config control.toml to see who is online and the running round." }
                }
            }
        }
        @if let Some((federation, participants)) = log_roster {
            section #log-roster {
                h2 { "Roster in the audit log" }
                p { "Federation " code { (federation) } " was created with: " (participants.join(", ")) }
            }
        }
    };
    layout("Federation", Nav::Federation, body)
}

fn plot(id: &str, name: &str, title: &str, y: &str, unit_y: bool, series: &[Series]) -> Markup {
    match lines_svg(name, title, "round", y, unit_y, series) {
        Ok(svg) => html! { figure id=(id) { (PreEscaped(svg)) } },
        Err(e) => html! { figure id=(id) { p.bad { "The plot could not be drawn: " (e) } } },
    }
}

/// The loss per completed training round, one marker each.
fn loss_series(rows: &[RoundRow]) -> Series {
    Series::new(
        "mean training loss",
        rows.iter()
            .filter(|r| r.completed() && r.kind == "train")
            .filter_map(|r| r.mean_loss.map(|l| (r.round as f64, f64::from(l))))
            .collect(),
    )
}

/// One series per reported metric (the initial model's as round 0).
fn metric_series(view: &RoundsView) -> Vec<Series> {
    let mut names: Vec<String> = Vec::new();
    for (k, _) in view
        .rows
        .iter()
        .flat_map(|r| r.metrics.iter())
        .chain(view.initial_metrics.iter())
    {
        if !names.contains(k) {
            names.push(k.clone());
        }
    }
    names
        .into_iter()
        .take(8)
        .map(|name| {
            let initial = view
                .initial_metrics
                .iter()
                .filter(|(k, _)| *k == name)
                .map(|(_, v)| (0.0, *v));
            let per_round = view.rows.iter().filter(|r| r.completed()).filter_map(|r| {
                r.metrics
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (r.round as f64, *v))
            });
            Series::new(name.clone(), initial.chain(per_round).collect())
        })
        .collect()
}

fn metrics_text(metrics: &[(String, f64)]) -> String {
    if metrics.is_empty() {
        return "-".into();
    }
    metrics
        .iter()
        .map(|(k, v)| format!("{k} {v:.4}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `/rounds` from the audit log.
pub fn rounds_from_log(view: &RoundsView) -> Markup {
    let loss = loss_series(&view.rows);
    let metrics = metric_series(view);
    let body = html! {
        h1 { "Rounds of " code { (view.federation) } }
        section {
            table #rounds-table {
                thead { tr {
                    th { "round" } th { "attempt" } th { "kind" } th { "mode" } th { "outcome" }
                    th { "members" } th { "dropouts" } th { "mean loss" } th { "validation" } th { "model" }
                } }
                tbody {
                    @for r in &view.rows {
                        tr data-round=(r.round) data-outcome=(r.outcome) {
                            td { a href={ "/rounds/" (r.round) } { (r.round) } }
                            td.num { (r.attempt) }
                            td { (r.kind) } td { (r.mode) } td { (r.outcome) }
                            td.num { (r.members.len()) }
                            td { @if r.dropouts.is_empty() { "-" } @else { (r.dropouts.join("; ")) } }
                            td.num { (r.mean_loss.map_or("-".into(), |l| format!("{l:.5}"))) }
                            td { (metrics_text(&r.metrics)) }
                            td.hash { (r.model_sha256.as_deref().map_or("-", short)) }
                        }
                    }
                }
            }
            @if view.rows.is_empty() { p.note { "The log holds no rounds yet." } }
        }
        section {
            h2 { "Loss per round" }
            (plot("loss-plot", "loss.svg", "Mean training loss per round", "mean loss", false, &[loss]))
            h2 { "Validation metrics per round" }
            @if metrics.is_empty() {
                p.note #metric-plot { "No validation metrics were reported for these rounds." }
            } @else {
                (plot("metric-plot", "metrics.svg", "Validation metrics per round", "value", false, &metrics))
            }
        }
    };
    layout("Rounds", Nav::Rounds, body)
}

/// `/rounds` from the coordinator's status alone (its recent rounds).
pub fn rounds_from_status(federation: &str, recent: &[RecentRound]) -> Markup {
    let loss = Series::new(
        "mean training loss",
        recent
            .iter()
            .filter(|r| r.kind == "train")
            .map(|r| (r.round as f64, f64::from(r.mean_loss)))
            .collect(),
    );
    let body = html! {
        h1 { "Recent rounds of " code { (federation) } }
        p.note { "From the coordinator's status (its most recent rounds). Start the console with --audit-log DIR for every round, its validation metrics and its audit entries." }
        section {
            table #rounds-table {
                thead { tr { th { "round" } th { "kind" } th { "members" } th { "dropouts" } th { "mean loss" } th { "model" } } }
                tbody {
                    @for r in recent {
                        tr data-round=(r.round) data-outcome="completed" {
                            td { a href={ "/rounds/" (r.round) } { (r.round) } }
                            td { (r.kind) } td.num { (r.members) }
                            td { @if r.dropouts.is_empty() { "-" } @else { (r.dropouts.join("; ")) } }
                            td.num { (format!("{:.5}", r.mean_loss)) }
                            td.hash { (short(&r.model_sha256)) }
                        }
                    }
                }
            }
        }
        section {
            h2 { "Loss per round" }
            (plot("loss-plot", "loss.svg", "Mean training loss per round", "mean loss", false, &[loss]))
        }
    };
    layout("Rounds", Nav::Rounds, body)
}

/// `/rounds/N` from the audit log.
pub fn round_detail(d: &RoundDetail) -> Markup {
    let body = html! {
        h1 { "Round " (d.round) " of " code { (d.federation) } }
        @for a in &d.attempts {
            section.attempt data-attempt=(a.attempt) {
                h2 { "Attempt " (a.attempt) ": " (a.kind) ", " (a.mode) ", " span.outcome { (a.outcome) } }
                p { "Members: " (a.members.join(", ")) }
                @if let Some(sha) = &a.global_in_sha256 { p { "Started from model " code.hash { (sha) } } }
                @if let Some(sha) = &a.model_sha256 {
                    p #model { "Model " code.hash #model-sha256 { (sha) }
                        @if let Some(l) = a.mean_loss { ", mean training loss " (format!("{l:.5}")) } }
                }
                @if !a.metrics.is_empty() { p { "Validation: " (metrics_text(&a.metrics)) } }
                @if let Some(c) = &a.conclusion { p { "Concluded: " (c) } }
                table.stages {
                    thead { tr { th { "stage" } th { "entry" } th { "time" } th { "bytes accepted" } th { "messages" } th { "dropped" } } }
                    tbody {
                        @for s in &a.stages {
                            tr {
                                td { (s.stage) " " (s.name) }
                                td.num { (s.entry) }
                                td.num { (s.seconds.map_or("-".into(), |t| format!("{t:.3} s"))) }
                                td.num { (s.bytes.map_or("-".into(), |b| b.to_string())) }
                                td.num { (s.messages) }
                                td.num { (s.dropped) }
                            }
                        }
                    }
                }
                p.note { "Stage time runs from the attempt's previous entry to the stage's close, by the log's timestamps; bytes are the messages the coordinator accepted (the stage's evidence blob)." }
                h3 { "Dropouts" }
                @if a.dropouts.is_empty() && a.abort.is_none() { p #dropouts { "none" } }
                @else {
                    ul #dropouts {
                        @for x in &a.dropouts { li { (x) } }
                        @if let Some(x) = &a.abort { li.bad { "aborted " (x) } }
                    }
                }
            }
        }
        section #entries {
            h2 { "Audit entries" }
            p.note { "Each entry's inclusion proof is checked by this console against the signed checkpoint below, whose signature is checked with the coordinator key named in the log." }
            table {
                thead { tr { th { "entry" } th { "kind" } th { "logged at (ms)" } th { "inclusion proof" } } }
                tbody {
                    @for e in &d.entries {
                        tr.entry data-entry=(e.index) {
                            td.num { (e.index) } td { code { (e.kind) } } td.num { (e.timestamp_ms) }
                            @match &e.proof {
                                ProofCheck::Checked { tree_size, hashes } => td.checked {
                                    "proof checked" span.note { " (" (hashes) " hashes, tree of " (tree_size) ")" }
                                },
                                ProofCheck::Failed(why) => td.proof-failed { "proof FAILED: " (why) },
                                ProofCheck::Unsigned => td.note { "no signed checkpoint covers it yet" },
                            }
                        }
                    }
                }
            }
        }
        section #checkpoint {
            h2 { "Checkpoint" }
            @match &d.checkpoint {
                Some(c) => {
                    p {
                        "Tree size " (c.tree_size) ", root " code.hash { (c.root) } ", signed at " (c.timestamp_ms) " ms. "
                        @if c.signature_checked {
                            span.ok { "signature checked" }
                            @if let Some(k) = &c.signed_by { " (coordinator key " code { (k) } ")" }
                        } @else {
                            span.bad { "signature not checked" }
                        }
                    }
                    pre #checkpoint-note { (c.note) }
                    h3 { "Cosignatures" }
                    @if c.cosignatures.is_empty() {
                        p.note { "No participant cosignature of this checkpoint is logged (cosignatures are checked by verification; see Verify)." }
                    } @else {
                        ul #cosignatures { @for (entry, witness, line) in &c.cosignatures { li { (witness) " (entry " (entry) "): " code { (line) } } } }
                    }
                }
                None => p.note { "No signed checkpoint covers this round yet." },
            }
        }
    };
    layout(&format!("Round {}", d.round), Nav::Rounds, body)
}

/// `/rounds/N` when only the coordinator's status is at hand.
pub fn round_from_status(r: &RecentRound) -> Markup {
    let body = html! {
        h1 { "Round " (r.round) }
        section {
            p { "Kind " (r.kind) ", " (r.members) " members, mean loss " (format!("{:.5}", r.mean_loss)) }
            p #model { "Model " code.hash #model-sha256 { (r.model_sha256) } }
            h3 { "Dropouts" }
            @if r.dropouts.is_empty() { p #dropouts { "none" } }
            @else { ul #dropouts { @for x in &r.dropouts { li { (x) } } } }
            p.note { "Stage times, audit entries, proofs and the checkpoint come from the audit log: start the console with --audit-log DIR." }
        }
    };
    layout(&format!("Round {}", r.round), Nav::Rounds, body)
}

/// `/verify`: the verdict and every entry, the first failure marked.
pub fn verify(v: &VerifyView) -> Markup {
    let body = html! {
        h1 { "Audit verification" }
        @if v.ok {
            section.banner-ok #verdict data-ok="true" {
                h2.ok { "verified" }
                pre { (v.report) }
                @if let Some(w) = &v.warning { p.bad { (w) } }
            }
        } @else {
            section.banner-failed #verdict data-ok="false" {
                h2.bad { "verification FAILED" }
                @if let Some(i) = v.failed_entry { p { "First failure at entry " strong #failed-entry { (i) } "." } }
                @if let Some(i) = v.failed_checkpoint { p #failed-checkpoint { "First failure at stored checkpoint " strong { (i) } "." } }
                pre #failure { (v.failure.as_deref().unwrap_or("")) }
            }
        }
        section {
            h2 { "Entries" }
            table #verify-entries {
                thead { tr { th { "entry" } th { "kind" } th { "stored hash" } th { "verification" } } }
                tbody {
                    @for e in &v.entries {
                        @let (class, label) = match e.state {
                            RowState::Verified => ("verified", "verified"),
                            RowState::Passed => ("passed", "checked before the failure"),
                            RowState::Failed => ("failed", "FAILED: first failure"),
                            RowState::NotReached => ("not-reached", "not reached"),
                            RowState::Unknown => ("unknown", "-"),
                        };
                        tr class=(class) id=[(e.state == RowState::Failed).then_some("first-failure")] data-entry=(e.index) {
                            td.num { (e.index) }
                            td { code { (e.kind) } }
                            td { @if e.hash_ok { "matches" } @else { span.bad { "MISMATCH" } } }
                            td { (label) }
                        }
                    }
                }
            }
        }
    };
    layout("Verify", Nav::Verify, body)
}

/// A page for what the console cannot show, with what to do.
pub fn message(title: &str, here: Nav, text: &str) -> Markup {
    layout(
        title,
        here,
        html! { h1 { (title) } section { p #message { (text) } } },
    )
}
