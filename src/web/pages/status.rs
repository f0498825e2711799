//! `/status`: the health of every collector, upstream link, the store, the location source and
//! the emails, rendered from the same `Status` value as `/api/status` (which never holds secrets).

use super::{Page, layout};
use crate::status::Status;
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use serde_json::Value;

fn text(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn num(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0)
}

fn time(v: &Value, key: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v.get(key)?.as_str()?).ok().map(|t| t.with_timezone(&Utc))
}

/// "3 min ago", "in 2 h": how people read times on a status page.
fn ago(t: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Markup {
    let Some(t) = t else { return html! { span.muted { "never" } } };
    let secs = (now - t).num_seconds();
    let span = secs.unsigned_abs();
    let amount = match span {
        0..=59 => format!("{span} s"),
        60..=5_999 => format!("{} min", span / 60),
        6_000..=172_799 => format!("{:.1} h", span as f64 / 3600.0),
        _ => format!("{} days", span / 86_400),
    };
    let words = if secs >= 0 { format!("{amount} ago") } else { format!("in {amount}") };
    html! { time datetime=(t.to_rfc3339()) title=(t.format("%Y-%m-%d %H:%M:%S UTC")) { (words) } }
}

pub fn bytes(n: u64) -> String {
    match n {
        0..=9_999 => format!("{n} B"),
        10_000..=9_999_999 => format!("{:.1} KB", n as f64 / 1e3),
        10_000_000..=9_999_999_999 => format!("{:.1} MB", n as f64 / 1e6),
        _ => format!("{:.2} GB", n as f64 / 1e9),
    }
}

fn uptime(s: u64) -> String {
    match s {
        0..=3_599 => format!("{} min", s / 60),
        3_600..=172_799 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} days {} h", s / 86_400, s % 86_400 / 3600),
    }
}

fn health(ok: bool, label: &str) -> Markup {
    html! { span class={ "health " (if ok { "ok" } else { "bad" }) } { (label) } }
}

pub fn page(s: &Status, now: DateTime<Utc>) -> Markup {
    let body = html! {
        main.content.status {
            h1 { "Status" }
            p.muted {
                "Outpost " (s.version) " · station " code { (s.station) } " · up " (uptime(s.uptime_s))
                " · as of " (now.format("%H:%M:%S UTC")) " · "
                a href="/status" { "refresh" } " · " a href="/api/status" { "JSON" } " · " a href="/metrics" { "metrics" }
            }
            (collectors(s, now))
            (sinks(s, now))
            (store(s, now))
            (location(&s.location, now))
            (email(&s.email, now))
        }
    };
    layout(Page::Status, "Status", &s.station, html! { meta http-equiv="refresh" content="60"; }, body)
}

fn collectors(s: &Status, now: DateTime<Utc>) -> Markup {
    html! {
        section #collectors {
            h2 { "Collectors" }
            div.cards {
                @for (name, v) in &s.sources {
                    @let failing = text(v, "last_error").is_some() && time(v, "last_error_time") > time(v, "last_success");
                    article.card {
                        h3 { (name) " " (health(!failing && time(v, "last_success").is_some(), if failing { "failing" } else if time(v, "last_success").is_some() { "ok" } else { "waiting" })) }
                        dl.facts {
                            dt { "Last success" } dd { (ago(time(v, "last_success"), now)) }
                            dt { "Polls" } dd { (num(v, "polls")) " (" (num(v, "failures")) " failed)" }
                            dt { "Records" } dd { (num(v, "records")) }
                            dt { "Next attempt" } dd { (ago(time(v, "next_attempt"), now)) }
                            @if let Some(e) = text(v, "last_error") {
                                dt { "Last error" } dd.error { (e) " " small { (ago(time(v, "last_error_time"), now)) } }
                            }
                        }
                        @if let Some(reasons) = v.get("rejections").and_then(Value::as_object).filter(|r| !r.is_empty()) {
                            h4 { "Rejected inputs" }
                            ul.rejections {
                                @for (reason, count) in reasons {
                                    li {
                                        strong { (count) "× " (reason) }
                                        @if let Some(d) = v.get("rejection_details").and_then(|d| text(d, reason)) { br; small { (d) } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn sinks(s: &Status, now: DateTime<Utc>) -> Markup {
    html! {
        section #sinks {
            h2 { "Upstream links" }
            table {
                thead { tr { th { "Sink" } th { "State" } th.n { "Backlog" } th.n { "Delivered" } th { "Last delivered" } th { "Last error" } } }
                tbody {
                    @for (name, v) in &s.sinks {
                        tr {
                            th scope="row" { (name) }
                            @if v["enabled"] != true {
                                td colspan="5" .muted { "not configured" }
                            } @else {
                                td { (health(v["connected"] == true, if v["connected"] == true { "connected" } else { "unreachable" })) }
                                td.n { (num(v, "backlog")) }
                                td.n { (num(v, "delivered")) }
                                td { (ago(time(v, "last_delivered"), now)) }
                                td.error { (text(v, "last_error").unwrap_or_default()) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn store(s: &Status, now: DateTime<Utc>) -> Markup {
    let st = &s.store;
    let kinds = st.get("kinds").and_then(Value::as_array).cloned().unwrap_or_default();
    html! {
        section #store {
            h2 { "Store " @if s.writer.error.is_some() { (health(false, "failing")) } @else { (health(true, "ok")) } }
            @if let Some(e) = &s.writer.error { p.error { (e) } }
            dl.facts {
                dt { "Size" } dd #store-size { (bytes(num(st, "size_bytes"))) }
                dt { "Growth" } dd #store-growth {
                    @match st.get("growth_bytes_per_day").and_then(Value::as_u64) {
                        Some(g) => { (bytes(g)) " per day" small.muted { " (from the last 24 h of positions)" } }
                        None => span.muted { "measured once positions older than a day are stored" },
                    }
                }
                dt { "Journal" } dd { (s.writer.journal_mode) ", " (bytes(s.writer.journal_bytes)) " since the last fold" }
                dt { "Last commit" } dd { (ago(s.writer.last_commit, now)) }
                dt { "Last fold" } dd { (ago(s.writer.last_fold, now)) }
            }
            table {
                thead { tr { th { "Kind" } th.n { "Records" } th { "First" } th { "Newest" } th.n { "Stored since start" } } }
                tbody {
                    @for k in &kinds {
                        @let kind = k["kind"].as_str().unwrap_or("?");
                        tr {
                            th scope="row" { (kind) }
                            td.n { (num(k, "count")) }
                            td { (time(k, "first").map(|t| t.format("%Y-%m-%d").to_string()).unwrap_or_default()) }
                            td { (ago(time(k, "last"), now)) }
                            td.n { (s.writer.stored.get(kind).copied().unwrap_or(0)) }
                        }
                    }
                }
            }
        }
    }
}

fn location(v: &Value, now: DateTime<Utc>) -> Markup {
    let current = v.get("current").filter(|c| !c.is_null());
    html! {
        section #location {
            h2 { "Location" }
            dl.facts {
                dt { "Observer" } dd {
                    @match current {
                        Some(c) => {
                            (format!("{:.4}°, {:.4}°", c["observer"]["latitude"].as_f64().unwrap_or(0.0), c["observer"]["longitude"].as_f64().unwrap_or(0.0)))
                            " from " (text(c, "source").unwrap_or_default())
                        }
                        None => span.error { "unknown: set [location] or attach a GPS" },
                    }
                }
                @if v["gpsd_configured"] == true {
                    dt { "gpsd" } dd { (health(v["gpsd_connected"] == true, if v["gpsd_connected"] == true { "connected" } else { "not connected" })) }
                    dt { "Last fix" } dd { (ago(time(v, "last_fix_received"), now)) }
                    @if let Some(e) = text(v, "last_error") { dt { "Last error" } dd.error { (e) } }
                }
            }
        }
    }
}

fn email(v: &Value, now: DateTime<Utc>) -> Markup {
    html! {
        section #email {
            h2 { "Night-pass emails" }
            @if v["enabled"] != true {
                p.muted { "Off: set [email] smtp_host, from and to." }
            } @else {
                dl.facts {
                    dt { "Sent" } dd { (num(v, "sent")) " (missed " (num(v, "missed")) ", failed attempts " (num(v, "failures")) ")" }
                    dt { "Last sent" } dd { (ago(time(v, "last_sent"), now)) }
                    @if let Some(w) = text(v, "waiting") { dt { "Waiting" } dd { (w) } }
                    @if let Some(e) = text(v, "last_error") { dt { "Last error" } dd.error { (e) " " small { (ago(time(v, "last_error_time"), now)) } } }
                }
                @let pending = v.get("pending").and_then(Value::as_array).cloned().unwrap_or_default();
                h3 { "Pending (" (pending.len()) ")" }
                @if pending.is_empty() { p.muted { "No visible pass in the next 24 hours." } }
                ul {
                    @for p in &pending {
                        li {
                            "Pass rising " (time(p, "pass_rise").map(|t| t.format("%a %H:%M UTC").to_string()).unwrap_or_default())
                            ", up to " (format!("{:.0}°", p["max_elevation_deg"].as_f64().unwrap_or(0.0)))
                            ": email " (ago(time(p, "send_at"), now))
                        }
                    }
                }
            }
        }
    }
}
