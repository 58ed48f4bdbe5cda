//! Unit tests of the site's decisions: the routing index against a scan, queue positions.

use super::*;

fn online(s: &mut SiteState, id: &str, max: u32, present_until: Millis) {
    let id = AgentId::from(id);
    s.agents.insert(
        id.clone(),
        AgentSlot {
            state: AgentState {
                status: AgentStatus::Online,
                ..AgentState::registered(id.clone(), id.0.clone(), vec!["d".into()], max)
            },
            presence: HashMap::from([("n".to_owned(), present_until)]),
            indexed: None,
        },
    );
    s.reindex(&id);
}

fn queue(s: &mut SiteState, n: usize) {
    for i in 0..n {
        let id = format!("c{i:03}");
        let conv = ConvId::from(id.as_str());
        s.convs.insert(
            conv.clone(),
            ConvSlot::new(conversation(&id, &format!("v{i}")), None),
        );
        let q = s.queues.entry("d".into()).or_default();
        q.insert(&conv, i as i64, 0);
    }
}

/// One decision of one assignment, as the store makes it.
fn assign_one(s: &mut SiteState, now: Millis, grace_ms: Millis) -> Option<(ConvId, AgentId)> {
    let site = SiteId("s".into());
    let (_, mut out) = s.assign_batch(&site, &"d".into(), now, grace_ms, &Rules::default(), 1);
    out.pop().map(|(c, a, _)| (c, a))
}

/// The index feeds the decision what a scan of every agent would: lowest load ratio, then idle longest;
/// nobody past their limit, the absent skipped, and a limit change or status change is seen.
#[test]
fn index_assigns_like_a_scan() {
    let mut s = SiteState::default();
    online(&mut s, "a", 2, 1_000);
    online(&mut s, "b", 4, 1_000);
    online(&mut s, "gone", 9, 10);
    queue(&mut s, 8);
    let dept = DeptId::from("d");
    let mut who = Vec::new();
    while let Some((_, agent)) = assign_one(&mut s, 500, 100) {
        who.push(agent.0);
    }
    // a 0/2 (id a first), b 0/4, b 1/4, a 1/2 = b 2/4 (b idle longer), a, b: a full at 2, b at 4.
    assert_eq!(who, ["a", "b", "b", "a", "b", "b"]);
    assert_eq!(
        s.queues[&DeptId::from("d")].order.len(),
        2,
        "two wait: every present agent is full"
    );
    assert!(!s.avail.contains_key(&dept), "no one is left in the index");
    let change = |s: &mut SiteState, f: &dyn Fn(&mut AgentSlot)| {
        f(s.agents.get_mut(&AgentId::from("gone")).unwrap());
        s.reindex(&"gone".into());
    };
    // The absent agent comes back: it takes the rest.
    change(&mut s, &|a| {
        a.presence.insert("n".into(), 2_000);
    });
    assert_eq!(assign_one(&mut s, 500, 100).unwrap().1.0, "gone");
    // Away agents take nothing; online again, they do.
    change(&mut s, &|a| a.state.status = AgentStatus::Away);
    assert!(assign_one(&mut s, 500, 100).is_none());
    change(&mut s, &|a| a.state.status = AgentStatus::Online);
    assert!(assign_one(&mut s, 500, 100).is_some());
    // A chat released frees a place.
    let conv = s.agents[&AgentId::from("a")].state.chats[0].clone();
    s.release_agent(&"a".into(), &conv);
    assert!(s.avail[&dept].iter().any(|r| r.id.0 == "a"));
}

/// A member's position is the same counted from either end.
#[test]
fn queue_position_from_the_nearer_end() {
    let mut s = SiteState::default();
    queue(&mut s, 7);
    let q = &s.queues[&DeptId::from("d")];
    let members: Vec<_> = q.order.iter().cloned().collect();
    for (i, m) in members.iter().enumerate() {
        assert_eq!(q.position(m), i as u32 + 1);
    }
}

fn conversation(id: &str, visitor: &str) -> Conversation {
    Conversation {
        id: id.into(),
        visitor: VisitorId(visitor.into()),
        department: "d".into(),
        state: ConvState::Queued,
        agent: None,
        priority: 0,
        created_at: 0,
        queued_at: None,
        first_assigned_at: None,
        closed_at: None,
        close_reason: None,
        locale: "en".into(),
        last_seq: 0,
        visitor_read: 0,
        agent_read: 0,
        needs: Default::default(),
        pending_since: None,
        offered: false,
    }
}

/// Each step returns the rows it changed, and none when it changes nothing: a visitor's
/// second open gets their open conversation back, a closed one cannot be queued, a requeue
/// goes to the head, and close frees the owner's slot.
#[test]
fn steps_return_the_rows_they_changed() {
    let site = SiteId("s".into());
    let mut s = SiteState::default();
    online(&mut s, "a", 1, 10_000);
    let (rows, (_, opened)) = s.open_conversation(&site, &conversation("c1", "v1"));
    assert!(opened);
    assert_eq!(rows.len(), 1);
    let (rows, (open, opened)) = s.open_conversation(&site, &conversation("c2", "v1"));
    assert!(!opened && rows.is_empty());
    assert_eq!(open.id, "c1".into());
    let (rows, queued) = s.enqueue(
        &site,
        &"c1".into(),
        &"d".into(),
        false,
        1,
        &Rules::default(),
    );
    assert!(queued);
    assert_eq!(rows.len(), 2, "the conversation and the arrival counter");
    s.open_conversation(&site, &conversation("c3", "v3"));
    let (_, queued) = s.enqueue(&site, &"c3".into(), &"d".into(), true, 2, &Rules::default());
    assert!(queued);
    let order: Vec<_> = s.queues[&DeptId::from("d")]
        .order
        .iter()
        .map(|(_, c)| c.0.clone())
        .collect();
    assert_eq!(order, ["c3", "c1"], "a requeue goes to the head");
    let (rows, assigned) = s.assign_batch(&site, &"d".into(), 3, 0, &Rules::default(), 10);
    assert_eq!(assigned.len(), 1, "one slot: one assignment");
    assert_eq!(rows.len(), 2, "the conversation and the agent");
    assert_eq!(s.agents[&AgentId::from("a")].state.load, 1);
    let (rows, before) = s.close(&site, &"c3".into(), "done", 4, 1000);
    assert_eq!(before.map(|c| c.state), Some(ConvState::Active));
    assert_eq!(rows.len(), 2, "the owner and the conversation");
    assert_eq!(s.agents[&AgentId::from("a")].state.load, 0);
    let (rows, again) = s.close(&site, &"c3".into(), "done", 5, 1000);
    assert!(again.is_none() && rows.is_empty());
    let (rows, queued) = s.enqueue(
        &site,
        &"c3".into(),
        &"d".into(),
        false,
        6,
        &Rules::default(),
    );
    assert!(
        !queued && rows.is_empty(),
        "a closed conversation is not queued"
    );
}

/// A transfer is refused with its reason and changes nothing; a good one moves the load.
#[test]
fn reassign_checks_the_target() {
    let site = SiteId("s".into());
    let mut s = SiteState::default();
    online(&mut s, "a", 2, 10_000);
    online(&mut s, "b", 1, 10_000);
    s.open_conversation(&site, &conversation("c1", "v1"));
    s.enqueue(
        &site,
        &"c1".into(),
        &"d".into(),
        false,
        1,
        &Rules::default(),
    );
    let (_, assigned) = s.assign_batch(&site, &"d".into(), 2, 0, &Rules::default(), 1);
    let owner = assigned[0].1.clone();
    let other = if owner.0 == "a" { "b" } else { "a" };
    let (rows, r) = s.reassign(&site, &"c1".into(), &other.into(), &owner, 3, 0);
    assert!(matches!(r, Reassign::NotOwner) && rows.is_empty());
    let (rows, r) = s.reassign(&site, &"c1".into(), &owner, &owner, 3, 0);
    assert!(matches!(r, Reassign::TargetUnavailable(Unavailable::Yourself)) && rows.is_empty());
    let (rows, r) = s.reassign(&site, &"c1".into(), &owner, &"nobody".into(), 3, 0);
    assert!(matches!(r, Reassign::TargetUnavailable(Unavailable::Disconnected)) && rows.is_empty());
    let (rows, r) = s.reassign(&site, &"c1".into(), &owner, &other.into(), 3, 0);
    assert!(matches!(r, Reassign::Done));
    assert_eq!(rows.len(), 3, "the conversation and both agents");
    assert_eq!(s.agents[&owner].state.load, 0);
    assert_eq!(s.agents[&AgentId::from(other)].state.load, 1);
}

/// Read marks only rise, and never past the last event.
#[test]
fn read_marks_only_rise() {
    let site = SiteId("s".into());
    let mut s = SiteState::default();
    s.open_conversation(&site, &conversation("c1", "v1"));
    s.convs.get_mut(&ConvId::from("c1")).unwrap().conv.last_seq = 5;
    assert_eq!(s.mark_read(&site, &"c1".into(), true, 9).1, Some(5));
    let (rows, mark) = s.mark_read(&site, &"c1".into(), true, 4);
    assert!(mark.is_none() && rows.is_empty());
    assert_eq!(s.mark_read(&site, &"c1".into(), false, 3).1, Some(3));
}
