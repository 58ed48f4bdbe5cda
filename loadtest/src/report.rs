//! What a run measured: counts, HDR latency histograms (microseconds), server memory; printed as a
//! table, written as JSON, plotted as SVG (latency by percentile, log-scaled tail).

use hdrhistogram::Histogram;
use serde_json::{Value, json};

pub fn histogram() -> Histogram<u64> {
    // 1 µs to 10 min at 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

#[derive(Default)]
pub struct Report {
    pub scenario: String,
    pub duration_secs: f64,
    pub connections: u64,
    pub errors: u64,
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    pub duplicated: u64,
    /// Named latency distributions in microseconds.
    pub latencies: Vec<(String, Histogram<u64>)>,
    /// Server memory per connection in bytes, above the idle process.
    pub memory_per_connection: Option<f64>,
    pub server_rss_before: Option<u64>,
    pub server_rss_after: Option<u64>,
    /// Extra figures of a scenario (e.g. the most chats any agent held).
    pub extra: Vec<(String, f64)>,
    /// Conditions that make the run fail.
    pub problems: Vec<String>,
}

impl Report {
    pub fn new(scenario: &str) -> Self {
        Self {
            scenario: scenario.into(),
            ..Self::default()
        }
    }

    pub fn failures(&self) -> Vec<String> {
        let mut f = self.problems.clone();
        if self.errors > 0 {
            f.push(format!("{} errors", self.errors));
        }
        if self.lost > 0 {
            f.push(format!("{} messages lost", self.lost));
        }
        if self.duplicated > 0 {
            f.push(format!("{} messages duplicated", self.duplicated));
        }
        f
    }

    fn ms(us: u64) -> f64 {
        us as f64 / 1000.0
    }

    pub fn print(&self) {
        println!("scenario      {}", self.scenario);
        println!("duration      {:.2} s", self.duration_secs);
        println!("connections   {}", self.connections);
        println!("errors        {}", self.errors);
        println!(
            "messages      sent {}  received {}  lost {}  duplicated {}",
            self.sent, self.received, self.lost, self.duplicated
        );
        if let (Some(b), Some(a)) = (self.server_rss_before, self.server_rss_after) {
            println!(
                "server RSS    {:.1} MiB → {:.1} MiB",
                b as f64 / 1048576.0,
                a as f64 / 1048576.0
            );
        }
        if let Some(m) = self.memory_per_connection {
            println!("memory/conn   {:.0} bytes ({:.2} KiB)", m, m / 1024.0);
        }
        for (k, v) in &self.extra {
            println!("{k:<13} {v}");
        }
        if !self.latencies.is_empty() {
            println!(
                "{:<28} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
                "latency (ms)", "count", "p50", "p90", "p95", "p99", "p99.9", "max"
            );
            for (name, h) in &self.latencies {
                println!(
                    "{:<28} {:>8} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
                    name,
                    h.len(),
                    Self::ms(h.value_at_quantile(0.5)),
                    Self::ms(h.value_at_quantile(0.9)),
                    Self::ms(h.value_at_quantile(0.95)),
                    Self::ms(h.value_at_quantile(0.99)),
                    Self::ms(h.value_at_quantile(0.999)),
                    Self::ms(h.max())
                );
            }
        }
        let f = self.failures();
        println!(
            "result        {}",
            if f.is_empty() {
                "ok".to_owned()
            } else {
                f.join("; ")
            }
        );
    }

    pub fn json(&self) -> Value {
        let lat: serde_json::Map<String, Value> = self
            .latencies
            .iter()
            .map(|(k, h)| {
                (
                    k.clone(),
                    json!({
                        "count": h.len(),
                        "p50_ms": Self::ms(h.value_at_quantile(0.5)),
                        "p90_ms": Self::ms(h.value_at_quantile(0.9)),
                        "p95_ms": Self::ms(h.value_at_quantile(0.95)),
                        "p99_ms": Self::ms(h.value_at_quantile(0.99)),
                        "p99_9_ms": Self::ms(h.value_at_quantile(0.999)),
                        "max_ms": Self::ms(h.max()),
                    }),
                )
            })
            .collect();
        json!({
            "scenario": self.scenario,
            "duration_secs": self.duration_secs,
            "connections": self.connections,
            "errors": self.errors,
            "messages": {"sent": self.sent, "received": self.received, "lost": self.lost, "duplicated": self.duplicated},
            "latency": lat,
            "memory_per_connection_bytes": self.memory_per_connection,
            "server_rss_before_bytes": self.server_rss_before,
            "server_rss_after_bytes": self.server_rss_after,
            "extra": self.extra.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "failures": self.failures(),
        })
    }

    /// Latency (ms, y) against percentile (x, log-scaled so the tail is visible).
    pub fn svg(&self) -> String {
        let (w, h, pad) = (720.0, 400.0, 50.0);
        let colors = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c"];
        let max_ms = self
            .latencies
            .iter()
            .map(|(_, h)| Self::ms(h.value_at_quantile(0.999)))
            .fold(0.001f64, f64::max)
            * 1.1;
        // x: -log10(1 - q) from 0 (p0) to 4 (p99.99).
        let x = |q: f64| pad + (-(1.0 - q).max(1e-4).log10() / 4.0) * (w - 2.0 * pad);
        let y = |ms: f64| h - pad - (ms / max_ms).min(1.0) * (h - 2.0 * pad);
        let mut out = format!(
            "<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}' font-family='sans-serif' font-size='12'>\
             <rect width='100%' height='100%' fill='white'/>\
             <text x='{pad}' y='20' font-size='14'>{} — latency by percentile (ms)</text>",
            self.scenario
        );
        for (q, label) in [
            (0.0, "p0"),
            (0.5, "p50"),
            (0.9, "p90"),
            (0.99, "p99"),
            (0.999, "p99.9"),
            (0.9999, "p99.99"),
        ] {
            let xx = x(q);
            out += &format!(
                "<line x1='{xx}' y1='{pad}' x2='{xx}' y2='{}' stroke='#e5e7eb'/><text x='{xx}' y='{}' text-anchor='middle'>{label}</text>",
                h - pad,
                h - pad + 16.0
            );
        }
        for i in 0..=4 {
            let ms = max_ms * f64::from(i) / 4.0;
            let yy = y(ms);
            out += &format!(
                "<line x1='{pad}' y1='{yy}' x2='{}' y2='{yy}' stroke='#e5e7eb'/><text x='{}' y='{}' text-anchor='end'>{ms:.2}</text>",
                w - pad,
                pad - 6.0,
                yy + 4.0
            );
        }
        for (i, (name, hist)) in self.latencies.iter().enumerate() {
            if hist.is_empty() {
                continue;
            }
            let color = colors[i % colors.len()];
            let points: Vec<String> = (0..=200)
                .map(|k| {
                    let q = 1.0 - 10f64.powf(-4.0 * f64::from(k) / 200.0);
                    format!("{:.1},{:.1}", x(q), y(Self::ms(hist.value_at_quantile(q))))
                })
                .collect();
            out += &format!(
                "<polyline fill='none' stroke='{color}' stroke-width='2' points='{}'/><text x='{}' y='{}' fill='{color}'>{name}</text>",
                points.join(" "),
                pad + 10.0,
                pad + 16.0 * (i as f64 + 1.0)
            );
        }
        out + "</svg>\n"
    }
}
