//! Beyond one machine (issue 14): Nebula nodes sharing PostgreSQL behind
//! HAProxy, made by `deploy/cluster/up`, under load while a node dies, the
//! primary is lost, a node loses its database and a node joins. Each test
//! has a cluster of its own (real processes, loopback, its own ports);
//! every load is bounded in count and time and every request has a
//! deadline. The figures each test prints are what the report quotes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::cluster_support::{client, run_load, send, visitor_cookie, Cluster, Outcome};

/// A read of the site that touches the database.
fn read_path(i: usize) -> String {
    if i.is_multiple_of(2) {
        "/".to_string()
    } else {
        format!("/memes/{}", 1 + i % 10)
    }
}

/// What a client that retries a write got in the end.
struct Write {
    text: String,
    acked: bool,
    attempts: Vec<Outcome>,
}

impl Write {
    fn replayed(&self) -> bool {
        self.attempts.iter().any(|o| {
            o.answer
                .as_ref()
                .is_ok_and(|r| r.header("idempotent-replayed") == Some("true"))
        })
    }
}

/// Submits a meme whose top text is `text`, as a browser with `cookie`
/// would, with `text` as its Idempotency-Key: on no answer or a 5xx it
/// sends the same request again (up to `within`), as the key allows.
fn submit_once(base: &str, cookie: &str, template: &str, text: &str, within: Duration) -> Write {
    let agent = client();
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("template", template),
            ("top_text", text),
            ("bottom_text", "cluster test"),
        ])
        .finish();
    let end = Instant::now() + within;
    let mut attempts = Vec::new();
    loop {
        let o = send(
            &agent,
            "POST",
            &format!("{base}/memes"),
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("cookie", cookie),
                ("idempotency-key", text),
            ],
            body.as_bytes(),
        );
        let status = o.status();
        attempts.push(o);
        match status {
            Some(303) => {
                return Write {
                    text: text.to_string(),
                    acked: true,
                    attempts,
                }
            }
            None | Some(500..) if Instant::now() < end => {
                std::thread::sleep(Duration::from_millis(200))
            }
            _ => {
                return Write {
                    text: text.to_string(),
                    acked: false,
                    attempts,
                }
            }
        }
    }
}

/// How many memes have each top text starting with `prefix`.
fn memes_by_text(c: &Cluster, prefix: &str) -> HashMap<String, i64> {
    c.sql(&format!(
        "SELECT top_text, count(*) FROM memes WHERE top_text LIKE '{prefix}%' GROUP BY top_text"
    ))
    .lines()
    .filter(|l| !l.is_empty())
    .map(|l| {
        let (text, n) = l.rsplit_once('|').unwrap();
        (text.to_string(), n.parse().unwrap())
    })
    .collect()
}

/// Every acknowledged write is there exactly once; one never
/// acknowledged is there at most once; nothing else is.
fn assert_each_write_once(c: &Cluster, prefix: &str, writes: &[&Write]) {
    let stored = memes_by_text(c, prefix);
    for w in writes {
        let n = stored.get(&w.text).copied().unwrap_or(0);
        if w.acked {
            assert_eq!(n, 1, "acknowledged write {:?} is stored {n} times", w.text);
        } else {
            assert!(
                n <= 1,
                "unacknowledged write {:?} is stored {n} times",
                w.text
            );
        }
    }
    let known: std::collections::HashSet<&str> = writes.iter().map(|w| w.text.as_str()).collect();
    let strangers: Vec<&String> = stored
        .keys()
        .filter(|t| !known.contains(t.as_str()))
        .collect();
    assert!(strangers.is_empty(), "rows nobody wrote: {strangers:?}");
}

fn status_counts<'a>(outcomes: impl Iterator<Item = &'a Outcome>) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for o in outcomes {
        let k = match &o.answer {
            Ok(r) => r.status.to_string(),
            Err(e) => format!("error: {e}"),
        };
        *m.entry(k).or_default() += 1;
    }
    m
}

/// Waits (bounded) until `progress` reaches `n`.
fn await_progress(progress: &AtomicUsize, n: usize, within: Duration) {
    let end = Instant::now() + within;
    while progress.load(Ordering::Relaxed) < n {
        assert!(
            Instant::now() < end,
            "the load did not reach {n} requests in {within:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_thousand_votes_through_the_balancer_are_each_counted_once() {
    // 1,000 votes from one address: past app.toml's rate_limit without the flag.
    let c = Cluster::up(3, "--no-rate-limits");
    let votes_before = c.sql_i64("SELECT coalesce(sum(votes), 0) FROM memes");
    let rows_before = c.sql_i64("SELECT count(*) FROM votes");
    let base = c.url("");
    let started = Instant::now();
    // Each vote from a new client without a cookie: a new visitor each.
    // One in 20 is for a meme that does not exist: refused, counted nowhere.
    let results = run_load(32, 1000, Duration::from_secs(120), move |i| {
        let id = if i % 20 == 19 { 999_999 } else { 1 + i % 10 };
        send(
            &client(),
            "POST",
            &format!("{base}/memes/{id}/vote"),
            &[("accept", "application/json")],
            b"",
        )
    });
    let took = started.elapsed();
    let outcomes: Vec<Outcome> = results
        .into_iter()
        .map(|o| o.expect("every vote sent within the budget"))
        .collect();
    let statuses = status_counts(outcomes.iter());
    let acked = outcomes.iter().filter(|o| o.status() == Some(200)).count();
    let refused = outcomes.iter().filter(|o| o.status() == Some(404)).count();
    assert_eq!(
        (acked, refused),
        (950, 50),
        "every vote for a meme acknowledged, every other refused: {statuses:?}"
    );
    let votes_after = c.sql_i64("SELECT coalesce(sum(votes), 0) FROM memes");
    let rows_after = c.sql_i64("SELECT count(*) FROM votes");
    assert_eq!(votes_after - votes_before, acked as i64, "memes.votes");
    assert_eq!(rows_after - rows_before, acked as i64, "rows in votes");
    let stats = c.stats();
    for n in 1..=3 {
        let s = &stats[&format!("node{n}")];
        assert!(
            s.responses_2xx >= 150,
            "node {n} served {} votes of {acked}: {stats:?}",
            s.responses_2xx
        );
    }
    eprintln!(
        "cluster votes: {acked} acknowledged, {refused} refused, in {took:.1?}; per node: {:?}",
        (1..=3)
            .map(|n| stats[&format!("node{n}")].responses_2xx)
            .collect::<Vec<_>>()
    );
}

#[test]
fn killing_a_node_under_load_fails_no_read_and_loses_no_write() {
    let c = Cluster::up(3, "--no-rate-limits");
    let template = c.sql("SELECT id FROM templates ORDER BY id LIMIT 1");
    let cookie = visitor_cookie(&c);
    let base = c.url("");
    let prefix = format!("kill-{}-", c.base);
    let progress = Arc::new(AtomicUsize::new(0));
    // Two reads for each write; the reads are not retried by the client:
    // a failed one is a failure of the cluster.
    let load = {
        let (progress, prefix) = (progress.clone(), prefix.clone());
        std::thread::spawn(move || {
            run_load(16, 1800, Duration::from_secs(90), move |i| {
                let r = if i % 3 == 0 {
                    Err(submit_once(
                        &base,
                        &cookie,
                        &template,
                        &format!("{prefix}{i}"),
                        Duration::from_secs(30),
                    ))
                } else {
                    Ok(send(
                        &client(),
                        "GET",
                        &format!("{base}{}", read_path(i)),
                        &[],
                        b"",
                    ))
                };
                progress.fetch_add(1, Ordering::Relaxed);
                r
            })
        })
    };
    await_progress(&progress, 400, Duration::from_secs(60));
    c.ctl(&["kill-node", "2"]);
    let killed_at = progress.load(Ordering::Relaxed);
    let results = load.join().unwrap();
    let down = c.await_status(2, "DOWN", Duration::from_secs(10));

    let done: Vec<_> = results.into_iter().flatten().collect();
    assert!(
        done.len() == 1800,
        "only {} of 1800 requests in the time",
        done.len()
    );
    let reads: Vec<&Outcome> = done.iter().filter_map(|r| r.as_ref().ok()).collect();
    let writes: Vec<&Write> = done.iter().filter_map(|r| r.as_ref().err()).collect();
    let failed_reads: Vec<String> = reads
        .iter()
        .filter(|o| o.status() != Some(200))
        .map(|o| match &o.answer {
            Ok(r) => format!("{} {}", r.status, String::from_utf8_lossy(&r.body)),
            Err(e) => e.clone(),
        })
        .collect();
    assert!(failed_reads.is_empty(), "failed reads: {failed_reads:?}");
    let unacked: Vec<_> = writes
        .iter()
        .filter(|w| !w.acked)
        .map(|w| (&w.text, status_counts(w.attempts.iter())))
        .collect();
    assert!(unacked.is_empty(), "writes never acknowledged: {unacked:?}");
    assert_each_write_once(&c, &prefix, &writes);
    let retried = writes.iter().filter(|w| w.attempts.len() > 1).count();
    let replayed = writes.iter().filter(|w| w.replayed()).count();
    let stats = c.stats();
    eprintln!(
        "cluster kill -9: node 2 killed after {killed_at} requests, seen DOWN {down:.1?} after the load; \
         {} reads, 0 failed; {} writes acknowledged, {retried} retried by the client, {replayed} \
         replayed; HAProxy retries {:?}, redispatches {:?}",
        reads.len(),
        writes.len(),
        (1..=3).map(|n| stats[&format!("node{n}")].retries).collect::<Vec<_>>(),
        (1..=3).map(|n| stats[&format!("node{n}")].redispatches).collect::<Vec<_>>(),
    );
}

#[test]
fn losing_the_primary_answers_503_until_the_standby_is_promoted_and_loses_no_write() {
    let c = Cluster::up(3, "--no-rate-limits");
    let template = c.sql("SELECT id FROM templates ORDER BY id LIMIT 1");
    let cookie = visitor_cookie(&c);
    let base = c.url("");
    let prefix = format!("failover-{}-", c.base);
    let stop = Arc::new(AtomicBool::new(false));
    // Every attempt of every write, and every read, as it happens.
    let seen: Arc<Mutex<Vec<(bool, Outcome)>>> = Arc::default();
    let acks = Arc::new(AtomicUsize::new(0));
    let load = {
        let (stop, seen, acks, prefix) = (stop.clone(), seen.clone(), acks.clone(), prefix.clone());
        std::thread::spawn(move || {
            run_load(10, 4000, Duration::from_secs(100), move |i| {
                if stop.load(Ordering::Relaxed) {
                    return None;
                }
                if i % 5 == 0 {
                    let o = send(
                        &client(),
                        "GET",
                        &format!("{base}{}", read_path(i)),
                        &[],
                        b"",
                    );
                    seen.lock().unwrap().push((false, o));
                    return None;
                }
                let w = submit_once(
                    &base,
                    &cookie,
                    &template,
                    &format!("{prefix}{i}"),
                    Duration::from_secs(40),
                );
                if w.acked {
                    acks.fetch_add(1, Ordering::Relaxed);
                }
                Some(w)
            })
        })
    };
    await_progress(&acks, 100, Duration::from_secs(60));
    let acked_before = acks.load(Ordering::Relaxed);
    let stopped = Instant::now();
    c.ctl(&["stop-primary"]);
    // The gap: no primary. Long enough for every node to notice.
    std::thread::sleep(Duration::from_secs(3));
    let promoted = Instant::now();
    let new_primary = c.ctl(&["promote-standby"]);
    assert_eq!(new_primary, "b");
    // Back when a write made after the promotion is acknowledged.
    let end = Instant::now() + Duration::from_secs(60);
    let recovered = loop {
        let first_ok = seen_ok_after(&seen, promoted);
        if let Some(t) = first_ok {
            break t;
        }
        assert!(
            Instant::now() < end,
            "no request succeeded within 60 s of the promotion:\n{}",
            c.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    // Every node back in the balancer, by itself.
    for n in 1..=3 {
        c.await_status(n, "UP", Duration::from_secs(20));
    }
    let acked_at_recovery = acks.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let writes: Vec<Write> = load
        .join()
        .unwrap()
        .into_iter()
        .flatten()
        .flatten()
        .collect();
    let acked_after = acks.load(Ordering::Relaxed) - acked_at_recovery;

    // Every answer a client got, writes' attempts and reads.
    let seen = seen.lock().unwrap();
    let all: Vec<&Outcome> = writes
        .iter()
        .flat_map(|w| w.attempts.iter())
        .chain(seen.iter().map(|(_, o)| o))
        .collect();
    // HAProxy 2.6 closes the client's connection without an answer (its log:
    // `<NOSRV> 503 0 … SC--`) for a request it was retrying when the last
    // node went down: seen only in the gap, while no node can serve. The
    // client retries such a write with its key like a 503, and the checks
    // below prove none was applied twice or lost; anything else is a failure.
    let dropped_in_gap = |o: &&Outcome| {
        o.at >= stopped
            && o.at <= recovered
            && o.answer
                .as_ref()
                .is_err_and(|e| e.contains("Peer disconnected"))
    };
    let dropped = all.iter().copied().filter(dropped_in_gap).count();
    let statuses = status_counts(all.iter().copied().filter(|o| !dropped_in_gap(o)));
    let bad: Vec<_> = statuses
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "200" | "303" | "503"))
        .collect();
    assert!(
        bad.is_empty(),
        "only 200, 303 and 503 (no 500, no hang): {statuses:?}\n{}",
        c.problems()
    );
    eprintln!("failover: {dropped} connection(s) closed by HAProxy while no node was up");
    let slowest = all.iter().map(|o| o.took).max().unwrap();
    let in_gap = |o: &&&Outcome| o.at >= stopped && o.at < promoted;
    let unavailable = all
        .iter()
        .filter(in_gap)
        .filter(|o| o.status() == Some(503))
        .count();
    assert!(unavailable > 0, "requests in the gap got 503: {statuses:?}");
    for o in all.iter().filter(|o| o.status() == Some(503)) {
        let r = o.answer.as_ref().unwrap();
        assert!(
            r.header("retry-after").is_some(),
            "a 503 says when to come back"
        );
    }
    let unacked = writes.iter().filter(|w| !w.acked).count();
    assert_eq!(
        unacked, 0,
        "every write acknowledged in the end (retried with its key)"
    );
    // On the new primary: everything acknowledged before the primary
    // stopped (the standby had it: synchronous), in the gap and after.
    assert_eq!(c.ctl(&["primary"]), "b");
    let refs: Vec<&Write> = writes.iter().collect();
    assert_each_write_once(&c, &prefix, &refs);
    let replayed = writes.iter().filter(|w| w.replayed()).count();
    eprintln!(
        "cluster failover: {acked_before} writes acknowledged before the stop, {acked_after} after \
         recovery; first success {:.2} s after the stop, {:.2} s after the promotion; \
         {unavailable} answers 503 in the gap; slowest request {slowest:.2?}; {replayed} writes \
         replayed by key; all statuses {statuses:?}",
        (recovered - stopped).as_secs_f64(),
        recovered.saturating_duration_since(promoted).as_secs_f64(),
    );
}

/// When the first request sent after `t` succeeded (its start time).
fn seen_ok_after(seen: &Mutex<Vec<(bool, Outcome)>>, t: Instant) -> Option<Instant> {
    seen.lock()
        .unwrap()
        .iter()
        .filter(|(_, o)| o.at >= t && o.status() == Some(200))
        .map(|(_, o)| o.at + o.took)
        .min()
}

/// Reads through the balancer on `threads` threads until `stop` (bounded
/// in count and time); their outcomes.
fn reads_until(
    base: String,
    stop: Arc<AtomicBool>,
    progress: Arc<AtomicUsize>,
) -> std::thread::JoinHandle<Vec<Outcome>> {
    std::thread::spawn(move || {
        run_load(8, 20_000, Duration::from_secs(60), move |i| {
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            let o = send(
                &client(),
                "GET",
                &format!("{base}{}", read_path(i)),
                &[],
                b"",
            );
            progress.fetch_add(1, Ordering::Relaxed);
            Some(o)
        })
        .into_iter()
        .flatten()
        .flatten()
        .collect()
    })
}

fn failures(reads: &[Outcome]) -> Vec<String> {
    reads
        .iter()
        .filter(|o| o.status() != Some(200))
        .map(|o| match &o.answer {
            Ok(r) => format!("{} {}", r.status, String::from_utf8_lossy(&r.body)),
            Err(e) => e.clone(),
        })
        .collect()
}

#[test]
fn a_node_cut_off_from_the_database_leaves_the_balancer_and_no_read_fails() {
    let c = Cluster::up(3, "");
    // Node 3 again, its database through a proxy the test can cut.
    c.ctl(&["proxy-node", "3"]);
    c.await_status(3, "UP", Duration::from_secs(15));
    let stop = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(AtomicUsize::new(0));
    let load = reads_until(c.url(""), stop.clone(), progress.clone());
    await_progress(&progress, 150, Duration::from_secs(30));
    let before_cut = c.stats()["node3"].responses_2xx;
    assert!(before_cut > 0, "node 3 served before the cut");
    let cut = Instant::now();
    c.ctl(&["cut-node", "3"]);
    c.await_status(3, "DOWN", Duration::from_secs(10));
    let out = cut.elapsed();
    // The node itself: alive, but not fit to serve.
    let health = |q: &str| {
        send(
            &client(),
            "GET",
            &c.node_url(3, &format!("/.well-known/nebula/health{q}")),
            &[],
            b"",
        )
        .status()
    };
    assert_eq!(health(""), Some(503), "health with the database cut");
    assert_eq!(health("?live"), Some(200), "liveness without the database");
    let s = c.stats()["node3"].clone();
    let (ok_at_out, err_at_out) = (s.responses_2xx, s.responses_5xx);
    let at_out = progress.load(Ordering::Relaxed);
    await_progress(&progress, at_out + 400, Duration::from_secs(30));
    let s = c.stats()["node3"].clone();
    assert_eq!(
        (s.responses_2xx, s.responses_5xx),
        (ok_at_out, err_at_out),
        "the balancer sent to node 3 after it went DOWN"
    );
    stop.store(true, Ordering::Relaxed);
    let reads = load.join().unwrap();
    let failed = failures(&reads);
    assert!(failed.is_empty(), "failed reads: {failed:?}");
    eprintln!(
        "cluster cut: node 3 out of the balancer {out:.2?} after its database was cut; it \
         answered {err_at_out} 5xx meanwhile (retried elsewhere); {} reads, 0 failed",
        reads.len()
    );
}

#[test]
fn a_node_started_under_load_serves_from_the_warm_compile_cache() {
    let c = Cluster::up(3, "");
    // The cache is warm once the first nodes have compiled into it: on a
    // fresh checkout nobody had, and node 4 compiled for minutes itself.
    for n in 1..=3 {
        let end = Instant::now() + Duration::from_secs(300);
        while !c.node_log(n).contains("every component loaded") {
            assert!(
                Instant::now() < end,
                "node {n} did not load its components in 300 s:\n{}",
                c.node_log(n)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(AtomicUsize::new(0));
    let load = reads_until(c.url(""), stop.clone(), progress.clone());
    await_progress(&progress, 100, Duration::from_secs(30));
    let started = Instant::now();
    c.ctl(&["start-node", "4"]);
    let live = started.elapsed();
    c.await_status(4, "UP", Duration::from_secs(15));
    let end = Instant::now() + Duration::from_secs(15);
    while c.stats()["node4"].responses_2xx == 0 {
        assert!(Instant::now() < end, "node 4 served nothing in 15 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    let serving = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let reads = load.join().unwrap();
    let failed = failures(&reads);
    assert!(failed.is_empty(), "failed reads: {failed:?}");

    // Every component came from the cache the other nodes filled (loaded
    // right after the node started serving).
    let end = Instant::now() + Duration::from_secs(60);
    while !c.node_log(4).contains("every component loaded") {
        assert!(
            Instant::now() < end,
            "node 4 did not load its components in 60 s:\n{}",
            c.node_log(4)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = c.node_log(4);
    let components = std::fs::read_to_string(crate::support::repo().join("app.toml"))
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("[components."))
        .count();
    let loaded: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" loaded") && l.contains("origin="))
        .collect();
    assert_eq!(loaded.len(), components, "one load per component:\n{log}");
    assert!(
        loaded.iter().all(|l| l.contains("origin=Cache")),
        "node 4 compiled something:\n{}",
        loaded.join("\n")
    );
    eprintln!(
        "cluster join: node 4 live {live:.2?} after its start, serving through the balancer after \
         {serving:.2?}; {components} components from the cache, none compiled; {} reads, 0 failed",
        reads.len()
    );
}

/// A client without the session cookie that retries a write with its
/// Idempotency-Key (or HAProxy resending it to another node) gets the first
/// answer, not a second write. (It failed while `once::key_of` scoped every
/// key by the visitor: a request without a cookie is a new random visitor
/// each time, so the retry was a new key and the meme was stored twice.)
#[test]
fn a_retry_without_a_cookie_is_answered_from_its_key() {
    let c = Cluster::up(1, "--no-rate-limits");
    let template = c.sql("SELECT id FROM templates ORDER BY id LIMIT 1");
    let text = format!("cookieless-{}", c.base);
    let body = format!("template={template}&top_text={text}&bottom_text=x");
    let post = || {
        send(
            &client(),
            "POST",
            &c.url("/memes"),
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("idempotency-key", &text),
            ],
            body.as_bytes(),
        )
    };
    let first = post();
    let again = post();
    assert_eq!((first.status(), again.status()), (Some(303), Some(303)));
    let replayed = again.answer.as_ref().unwrap().header("idempotent-replayed");
    assert_eq!(
        replayed,
        Some("true"),
        "the retry is answered from the record"
    );
    assert_eq!(memes_by_text(&c, &text).get(&text), Some(&1), "stored once");
}
