//! `GET /admin/spend?group_by=key|team|user|model|day&from=YYYY-MM-DD&to=YYYY-MM-DD`: what the
//! gateway keys spent, from the days' totals the access layer keeps (per key, model and UTC
//! day; the embedded store or Redis). `from` defaults to 30 days before `to`, `to` to today.
//! Calls of unpriced models are counted apart (`unpriced_requests`): their cost is unknown,
//! never 0.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::access::spend::{day, DayTotals};
use crate::error::ApiError;
use crate::exchange::Exchange;
use crate::handlers::query_param;
use crate::http::Responder;

const GROUPS: &[&str] = &["key", "team", "user", "model", "day"];

pub fn get(x: &Exchange, res: &mut Responder<'_>) {
    match run(x) {
        Ok(value) => {
            let _ = x.send_value(res, &value, Vec::new());
        }
        Err(e) => x.send_error(res, &e),
    }
}

fn date(q: Option<&str>, name: &str) -> Result<Option<String>, ApiError> {
    let Some(v) = query_param(q, name) else {
        return Ok(None);
    };
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(&v, format)
        .map(|_| Some(v.clone()))
        .map_err(|_| ApiError::invalid(Some(name), format!("`{name}` must be a date YYYY-MM-DD.")))
}

fn run(x: &Exchange) -> Result<Value, ApiError> {
    let q = x.req.query();
    let group_by = query_param(q, "group_by").unwrap_or_else(|| "key".into());
    if !GROUPS.contains(&group_by.as_str()) {
        return Err(ApiError::invalid(
            Some("group_by"),
            format!("`group_by` must be one of {}.", GROUPS.join(", ")),
        ));
    }
    let now = x.gw.access.now();
    let to = date(q, "to")?.unwrap_or_else(|| day(now));
    let from = match date(q, "from")? {
        Some(from) => from,
        None => {
            let format = time::macros::format_description!("[year]-[month]-[day]");
            let end = time::Date::parse(&to, format)
                .map(|d| d.midnight().assume_utc().unix_timestamp())
                .unwrap_or(now);
            day(end - 30 * 86_400)
        }
    };
    if from > to {
        return Err(ApiError::invalid(Some("from"), "`from` is after `to`."));
    }
    let days =
        x.gw.access
            .days(&from, &to)
            .map_err(|e| ApiError::new(503, "server_error", Some("store_unavailable"), e))?;
    let rows = group(&days, &group_by);
    let total: f64 = rows
        .iter()
        .map(|r| r["spend"].as_f64().unwrap_or(0.0))
        .sum();
    Ok(json!({
        "object": "list",
        "group_by": group_by,
        "from": from,
        "to": to,
        "total_spend": total,
        "data": rows,
    }))
}

/// Adds the days' totals up by one of their fields, largest spend first.
fn group(days: &[DayTotals], by: &str) -> Vec<Value> {
    let mut groups: BTreeMap<Option<String>, DayTotals> = BTreeMap::new();
    for d in days {
        let name = match by {
            "key" => Some(d.key.clone()),
            "team" => d.team.clone(),
            "user" => d.user.clone(),
            "model" => Some(d.model.clone()),
            _ => Some(d.day.clone()),
        };
        let g = groups.entry(name).or_default();
        g.requests += d.requests;
        g.prompt_tokens += d.prompt_tokens;
        g.completion_tokens += d.completion_tokens;
        g.spend += d.spend;
        g.unpriced_requests += d.unpriced_requests;
    }
    let mut rows: Vec<(Option<String>, DayTotals)> = groups.into_iter().collect();
    if by != "day" {
        rows.sort_by(|a, b| b.1.spend.total_cmp(&a.1.spend));
    }
    rows.into_iter()
        .map(|(name, g)| {
            json!({
                by: name,
                "spend": g.spend,
                "requests": g.requests,
                "prompt_tokens": g.prompt_tokens,
                "completion_tokens": g.completion_tokens,
                "unpriced_requests": g.unpriced_requests,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_add_up_by_team_with_keys_without_a_team_apart() {
        let row = |key: &str, team: Option<&str>, spend: f64| DayTotals {
            day: "2026-01-01".into(),
            key: key.into(),
            team: team.map(str::to_string),
            model: "m".into(),
            requests: 1,
            spend,
            ..DayTotals::default()
        };
        let rows = group(
            &[
                row("a", Some("t"), 1.0),
                row("b", Some("t"), 2.0),
                row("c", None, 0.5),
            ],
            "team",
        );
        assert_eq!(rows[0]["team"], "t");
        assert_eq!(rows[0]["spend"], 3.0);
        assert_eq!(rows[0]["requests"], 2);
        assert!(rows[1]["team"].is_null());
    }
}
