//! `/status`: the health of every collector, upstream link, the store, the location source and
//! the emails, rendered from the same `Status` value as `/api/status` (which never holds secrets).

use super::{Page, layout};
use crate::alerts::EmailSnapshot;
use crate::location::LocationSnapshot;
use crate::status::{AgeLevel, Part, Status, TleAge};
use chrono::{DateTime, Utc};
use maud::{Markup, html};

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
                "Outpost " (s.version) " · station " code { (s.station) } " · up " (uptime(s.uptime_s.unwrap_or(0)))
                " · as of " (now.format("%H:%M:%S UTC")) " · "
                a href="/status" { "refresh" } " · " a href="/api/status" { "JSON" } " · " a href="/metrics" { "metrics" }
            }
            (collectors(s, now))
            (tle(s.tle.as_ref(), now))
            (sinks(s, now))
            (store(s, now))
            (location(s.location.as_ref(), now))
            (email(s.email.as_ref().and_then(Part::on), now))
            (danger_alerts(s.danger_alerts.as_ref().and_then(Part::on), now))
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
                    @let failing = v.last_error.is_some() && v.last_error_time > v.last_success;
                    article.card {
                        h3 { (name) " " (health(!failing && v.last_success.is_some(), if failing { "failing" } else if v.last_success.is_some() { "ok" } else { "waiting" })) }
                        dl.facts {
                            dt { "Last success" } dd { (ago(v.last_success, now)) }
                            dt { "Polls" } dd { (v.polls) " (" (v.failures) " failed)" }
                            dt { "Records" } dd { (v.records) }
                            dt { "Next attempt" } dd { (ago(v.next_attempt, now)) }
                            @if let Some(e) = &v.last_error {
                                dt { "Last error" } dd.error { (e) " " small { (ago(v.last_error_time, now)) } }
                            }
                        }
                        @if !v.rejections.is_empty() {
                            h4 { "Rejected inputs" }
                            ul.rejections {
                                @for (reason, count) in &v.rejections {
                                    li {
                                        strong { (count) "× " (reason) }
                                        @if let Some(d) = v.rejection_details.get(reason) { br; small { (d) } }
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

/// The newest TLE's age: a warning after 3 days, an error once no pass is predicted from it.
fn tle(v: Option<&TleAge>, now: DateTime<Utc>) -> Markup {
    html! {
        section #tle {
            @match v {
                None => {
                    h2 { "Orbital elements (TLE) " (health(false, "none yet")) }
                    p.muted { "No TLE stored yet: passes are predicted once one arrives." }
                }
                Some(t) => {
                    @let (class, label) = match t.level {
                        AgeLevel::Ok => ("ok", "ok"),
                        AgeLevel::Warn => ("warn", "old"),
                        AgeLevel::Error => ("bad", "unusable"),
                    };
                    h2 { "Orbital elements (TLE) " span class={ "health " (class) } { (label) } }
                    dl.facts {
                        dt { "Newest epoch" } dd #tle-epoch { (t.epoch.format("%Y-%m-%d %H:%M UTC")) " (" (ago(Some(t.epoch), now)) ")" }
                        dt { "Age" } dd #tle-age { (format!("{:.1} days", t.age_days)) }
                    }
                    p #tle-message class=(match t.level { AgeLevel::Ok => "muted", AgeLevel::Warn => "warning", AgeLevel::Error => "error" }) { (t.message) }
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
                            @match v.on() {
                                None => td colspan="5" .muted { "not configured" },
                                Some(v) => {
                                    td { (health(v.connected, if v.connected { "connected" } else { "unreachable" })) }
                                    td.n { (v.backlog) }
                                    td.n { (v.delivered) }
                                    td { (ago(v.last_delivered, now)) }
                                    td.error { (v.last_error.clone().unwrap_or_default()) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn store(s: &Status, now: DateTime<Utc>) -> Markup {
    let st = &s.store.summary;
    let writer_error = s.writer.as_ref().and_then(|w| w.error.clone());
    html! {
        section #store {
            h2 { "Store " @if writer_error.is_some() { (health(false, "failing")) } @else { (health(true, "ok")) } }
            @if let Some(e) = &writer_error { p.error { (e) } }
            dl.facts {
                dt { "Size" } dd #store-size { (bytes(st.size_bytes)) }
                dt { "Growth" } dd #store-growth {
                    @match s.store.growth_bytes_per_day {
                        Some(g) => { (bytes(g)) " per day" small.muted { " (from the last 24 h of positions)" } }
                        None => span.muted { "measured once positions older than a day are stored" },
                    }
                }
                @if let Some(w) = &s.writer {
                    dt { "Journal" } dd { (w.journal_mode) " (" (w.journal_write_bytes) " B per commit), " (bytes(w.journal_bytes)) " since the last fold" }
                    dt { "Last commit" } dd { (ago(w.last_commit, now)) }
                    dt { "Last fold" } dd { (ago(w.last_fold, now)) }
                }
            }
            table {
                thead { tr { th { "Kind" } th.n { "Records" } th { "First" } th { "Newest" } th.n { "Stored since start" } } }
                tbody {
                    @for k in &st.kinds {
                        tr {
                            th scope="row" { (k.kind.as_str()) }
                            td.n { (k.count) }
                            td { (k.first.map(|t| t.format("%Y-%m-%d").to_string()).unwrap_or_default()) }
                            td { (ago(k.last, now)) }
                            td.n { (s.writer.as_ref().and_then(|w| w.stored.get(k.kind.as_str()).copied()).unwrap_or(0)) }
                        }
                    }
                }
            }
        }
    }
}

fn location(v: Option<&LocationSnapshot>, now: DateTime<Utc>) -> Markup {
    let v = v.cloned().unwrap_or_default();
    html! {
        section #location {
            h2 { "Location" }
            dl.facts {
                dt { "Observer" } dd {
                    @match &v.current {
                        Some(c) => {
                            (format!("{:.4}°, {:.4}°", c.observer.latitude, c.observer.longitude))
                            " from " (serde_json::to_value(c.source).ok().and_then(|s| s.as_str().map(str::to_owned)).unwrap_or_default())
                        }
                        None => span.error { "unknown: set [location] or attach a GPS" },
                    }
                }
                @if v.gpsd_configured {
                    dt { "gpsd" } dd { (health(v.gpsd_connected, if v.gpsd_connected { "connected" } else { "not connected" })) }
                    dt { "Last fix" } dd { (ago(v.last_fix_received, now)) }
                    @if let Some(e) = &v.last_error { dt { "Last error" } dd.error { (e) } }
                }
            }
        }
    }
}

fn danger_alerts(v: Option<&crate::alerts::DangerSnapshot>, now: DateTime<Utc>) -> Markup {
    html! {
        section #danger-alerts {
            h2 { "Avalanche danger alerts" }
            @match v {
                None => p.muted { "Off: set [avalanche_alerts] email or push." },
                Some(v) => {
                    dl.facts {
                        dt { "From level" } dd { (v.min_level) }
                        dt { "Sent" } dd { (v.sent) " (missed " (v.missed) ", failed attempts " (v.failures) ", retrying " (v.retrying) ")" }
                        dt { "Last sent" } dd { (ago(v.last_sent, now)) }
                        @if let Some(e) = &v.last_error { dt { "Last error" } dd.error { (e) " " small { (ago(v.last_error_time, now)) } } }
                    }
                    ul {
                        @for a in &v.recorded {
                            li { (a.region_name) " " (a.valid_date) ": level " (a.level) " by " (a.channel.as_str()) ", " (format!("{:?}", a.outcome).to_lowercase()) }
                        }
                    }
                }
            }
        }
    }
}

fn email(v: Option<&EmailSnapshot>, now: DateTime<Utc>) -> Markup {
    html! {
        section #email {
            h2 { "Night-pass emails" }
            @match v {
                None => p.muted { "Off: set [email] smtp_host, from and to." },
                Some(v) => {
                    dl.facts {
                        dt { "Sent" } dd { (v.sent) " (missed " (v.missed) ", failed attempts " (v.failures) ")" }
                        dt { "Last sent" } dd { (ago(v.last_sent, now)) }
                        @if let Some(w) = &v.waiting { dt { "Waiting" } dd { (w) } }
                        @if let Some(e) = &v.last_error { dt { "Last error" } dd.error { (e) " " small { (ago(v.last_error_time, now)) } } }
                    }
                    h3 { "Pending (" (v.pending.len()) ")" }
                    @if v.pending.is_empty() { p.muted { "No visible pass in the next 24 hours." } }
                    ul {
                        @for p in &v.pending {
                            li {
                                "Pass rising " (p.pass_rise.format("%a %H:%M UTC"))
                                ", up to " (format!("{:.0}°", p.max_elevation_deg))
                                ": email " (ago(Some(p.send_at), now))
                            }
                        }
                    }
                }
            }
        }
    }
}
