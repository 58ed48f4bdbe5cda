//! Finding tickets: a listing's filters as one SQL statement for either database, and the
//! words of a full-text search (SQLite's FTS5 or PostgreSQL's text search, tokenized alike).

use super::{Result, TicketFilter};
use crate::db::{Database, Kind};
use crate::model::SiteId;

/// From this many matching tickets on, a SQLite search walks the tickets newest first.
const DENSE_SEARCH: i64 = 2_000;

/// The words of a search, lowercased, without punctuation (both databases tokenize alike).
pub(super) fn search_words(q: &str) -> Vec<String> {
    q.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(20)
        .map(str::to_lowercase)
        .collect()
}

/// The rows of the tickets `filter` finds on `site`, newest first.
pub(super) async fn list(
    db: &Database,
    site: &SiteId,
    filter: &TicketFilter,
) -> Result<Vec<sqlx::any::AnyRow>> {
    let words = filter
        .query
        .as_deref()
        .map(search_words)
        .filter(|w| !w.is_empty());
    // SQLite: each word quoted, so FTS5 operators in a visitor's words stay words.
    let phrase = words.as_ref().map(|words| {
        words
            .iter()
            .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
            .collect::<Vec<_>>()
            .join(" ")
    });
    // SQLite picks no good plan for both kinds of search on its own. A search that matches
    // many tickets is answered by walking the tickets newest first and asking the index
    // about each (it stops after `limit`); one that matches few, by fetching those few and
    // sorting them. Counting up to the threshold costs under a millisecond.
    let dense = match (&phrase, db.kind()) {
        (Some(phrase), Kind::Sqlite) => {
            let n: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM (SELECT rowid FROM tickets_fts \
                 WHERE tickets_fts MATCH $1 LIMIT $2)",
            )
            .bind(phrase)
            .bind(DENSE_SEARCH)
            .fetch_one(db.pool())
            .await?;
            n >= DENSE_SEARCH
        }
        _ => false,
    };
    // Conditions in a fixed order, numbered as they are added: both databases bind by it.
    // A sparse SQLite search must not walk the site's index (`+site`).
    let sparse = phrase.is_some() && !dense && db.kind() == Kind::Sqlite;
    let mut sql = String::from(if sparse {
        "SELECT body FROM tickets WHERE +site = $1"
    } else {
        "SELECT body FROM tickets WHERE site = $1"
    });
    let mut args: Vec<String> = vec![site.0.clone()];
    if let Some(depts) = &filter.departments {
        let marks: Vec<String> = depts
            .iter()
            .map(|d| {
                args.push(d.0.clone());
                format!("${}", args.len())
            })
            .collect();
        if marks.is_empty() {
            sql.push_str(" AND 1 = 0");
        } else {
            sql.push_str(&format!(" AND department IN ({})", marks.join(", ")));
        }
    }
    let mut add = |sql: &mut String, cond: &str, value: String| {
        args.push(value);
        sql.push_str(&cond.replace('?', &format!("${}", args.len())));
    };
    if let Some(d) = &filter.department {
        add(&mut sql, " AND department = ?", d.0.clone());
    }
    if let Some(s) = &filter.status {
        add(&mut sql, " AND status = ?", s.clone());
    }
    if let Some(v) = &filter.visitor {
        add(&mut sql, " AND visitor = ?", v.clone());
    }
    if let Some(a) = &filter.agent {
        add(&mut sql, " AND agents LIKE ?", format!("% {a} %"));
    }
    if let Some(c) = &filter.cursor {
        add(&mut sql, " AND id < ?", c.clone());
    }
    if let Some(f) = filter.follow_up {
        add(&mut sql, " AND follow_up = ?", f.as_str().to_owned());
    }
    if let Some(t) = &filter.tag {
        add(&mut sql, " AND tags LIKE ?", format!("% {t} %"));
    }
    if let (Some(words), Some(phrase)) = (words, phrase) {
        match db.kind() {
            Kind::Sqlite if dense => add(
                &mut sql,
                " AND EXISTS (SELECT 1 FROM tickets_fts f \
                 WHERE f.tickets_fts MATCH ? AND f.rowid = tickets.rowid)",
                phrase,
            ),
            Kind::Sqlite => add(
                &mut sql,
                " AND rowid IN (SELECT rowid FROM tickets_fts WHERE tickets_fts MATCH ?)",
                phrase,
            ),
            Kind::Postgres => add(
                &mut sql,
                " AND to_tsvector('simple', search_text) @@ plainto_tsquery('simple', ?)",
                words.join(" "),
            ),
        }
    }
    // Numbers after the text arguments, numbered on from them.
    let mut numbers: Vec<i64> = Vec::new();
    for (cond, value) in [
        (" AND closed_at >= ", filter.since),
        (" AND closed_at < ", filter.until),
        (" AND rating = ", filter.rating.map(i64::from)),
    ] {
        if let Some(v) = value {
            numbers.push(v);
            sql.push_str(&format!("{cond}${}", args.len() + numbers.len()));
        }
    }
    let limit_at = args.len() + numbers.len() + 1;
    sql.push_str(&format!(" ORDER BY id DESC LIMIT ${limit_at}"));
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
    for a in &args {
        query = query.bind(a);
    }
    for n in numbers {
        query = query.bind(n);
    }
    let limit = i64::try_from(filter.limit).unwrap_or(i64::MAX);
    Ok(query.bind(limit).fetch_all(db.pool()).await?)
}
