//! Reading and writing the backend's hashes: agents and conversations as Redis keeps them.

use std::collections::HashMap;

use crate::model::{
    AgentId, AgentState, AgentStatus, ConvId, ConvState, Conversation, DeptId, Millis, VisitorId,
};
use crate::routing::{Candidate, Needs, Rules, Snapshot, Waiting};
use crate::state::{Result, StoreError};

pub(super) fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::Corrupt(what.into())
}

fn num<T: std::str::FromStr + Default>(h: &HashMap<String, String>, k: &str) -> T {
    h.get(k).and_then(|v| v.parse().ok()).unwrap_or_default()
}

fn opt_num(h: &HashMap<String, String>, k: &str) -> Option<i64> {
    h.get(k)
        .filter(|v| !v.is_empty())
        .and_then(|v| v.parse().ok())
}

pub(super) fn parse_agent(
    id: &AgentId,
    h: &HashMap<String, String>,
    chats: Vec<String>,
    since: &HashMap<String, Millis>,
) -> Result<AgentState> {
    let departments: Vec<DeptId> = h
        .get("depts")
        .map(|d| serde_json::from_str(d))
        .transpose()
        .map_err(|e| corrupt(format!("agent {id} departments: {e}")))?
        .unwrap_or_default();
    let present_until = h
        .iter()
        .filter(|(k, _)| k.starts_with("node:"))
        .filter_map(|(_, v)| v.parse::<i64>().ok())
        .max()
        .unwrap_or(0);
    Ok(AgentState {
        id: id.clone(),
        name: h.get("name").cloned().unwrap_or_default(),
        departments,
        status: h
            .get("status")
            .and_then(|s| AgentStatus::parse(s))
            .unwrap_or(AgentStatus::Offline),
        max_concurrent: num(h, "max"),
        cap: num(h, "cap"),
        load: num::<i64>(h, "load").max(0) as u32,
        idle_since: num(h, "idle_since"),
        present_until,
        chats_since: chats
            .iter()
            .map(|c| since.get(c).copied().unwrap_or(0))
            .collect(),
        chats: chats.into_iter().map(ConvId).collect(),
        skills: skills(h.get("skills").map(String::as_str))
            .map_err(|e| corrupt(format!("agent {id} skills: {e}")))?,
    })
}

fn skills(json: Option<&str>) -> serde_json::Result<Vec<String>> {
    json.filter(|s| !s.is_empty())
        .map(serde_json::from_str)
        .transpose()
        .map(Option::unwrap_or_default)
}

fn needs(json: Option<&str>) -> serde_json::Result<Needs> {
    json.filter(|s| !s.is_empty())
        .map(serde_json::from_str)
        .transpose()
        .map(Option::unwrap_or_default)
}

/// What `snapshot.lua` read, as `routing::decide` takes it.
pub(super) fn parse_snapshot(
    now: Millis,
    grace_ms: Millis,
    rules: &Rules,
    queue: Vec<String>,
    agents: Vec<String>,
) -> Result<Snapshot> {
    let queue = queue
        .chunks_exact(3)
        .map(|c| {
            Ok(Waiting {
                conv: ConvId(c[0].clone()),
                since: c[1].parse().unwrap_or(now),
                needs: needs(Some(&c[2]))
                    .map_err(|e| corrupt(format!("conversation {} needs: {e}", c[0])))?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let agents = agents
        .chunks_exact(7)
        .map(|c| {
            Ok(Candidate {
                id: AgentId(c[0].clone()),
                status: AgentStatus::parse(&c[1]).unwrap_or(AgentStatus::Offline),
                load: c[2].parse::<i64>().unwrap_or(0).max(0) as u32,
                max: c[3].parse().unwrap_or(0),
                idle_since: c[4].parse().unwrap_or(0),
                present_until: c[5].parse().unwrap_or(0),
                skills: skills(Some(&c[6]))
                    .map_err(|e| corrupt(format!("agent {} skills: {e}", c[0])))?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Snapshot {
        now,
        grace_ms,
        rules: *rules,
        queue,
        agents,
    })
}

pub(super) fn parse_conv(id: &ConvId, h: &HashMap<String, String>) -> Result<Conversation> {
    let state = h
        .get("state")
        .and_then(|s| ConvState::parse(s))
        .ok_or_else(|| corrupt(format!("conversation {id} has no state")))?;
    Ok(Conversation {
        id: id.clone(),
        visitor: VisitorId(h.get("visitor").cloned().unwrap_or_default()),
        department: DeptId(h.get("department").cloned().unwrap_or_default()),
        state,
        agent: h
            .get("agent")
            .filter(|a| !a.is_empty())
            .cloned()
            .map(AgentId),
        priority: num(h, "priority"),
        created_at: num(h, "created_at"),
        queued_at: opt_num(h, "queued_at"),
        first_assigned_at: opt_num(h, "first_assigned_at"),
        closed_at: opt_num(h, "closed_at"),
        close_reason: h.get("close_reason").cloned(),
        locale: h.get("locale").cloned().unwrap_or_else(|| "en".into()),
        last_seq: num(h, "seq"),
        visitor_read: num(h, "vr"),
        agent_read: num(h, "ar"),
        needs: needs(h.get("needs").map(String::as_str))
            .map_err(|e| corrupt(format!("conversation {id} needs: {e}")))?,
        pending_since: opt_num(h, "pending_since"),
        offered: h.get("offered").is_some_and(|v| v == "1"),
    })
}

pub(super) fn flat_to_map(flat: Vec<String>) -> HashMap<String, String> {
    let mut it = flat.into_iter();
    let mut h = HashMap::new();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        h.insert(k, v);
    }
    h
}
