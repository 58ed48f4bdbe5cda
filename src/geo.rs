//! The country of a visitor's address, for agents: from a proxy that says it (Cloudflare's
//! `CF-IPCountry`, named by `country_header`, believed only from `trusted_proxies`), or from a
//! MaxMind-format database (`geoip_database`: GeoLite2 or GeoIP2 Country or City, read once at
//! start-up with `maxminddb`). Neither set: no country.

use std::net::{IpAddr, SocketAddr};

use anyhow::Context;

use crate::config::Config;
use crate::model::Country;

/// Where countries come from. Cheap to share (`Arc`).
pub struct Geo {
    /// The database, held in memory (a Country database is about 10 MB, a City one 70 MB).
    reader: Option<maxminddb::Reader<Vec<u8>>>,
}

impl Geo {
    /// Reads `geoip_database`, if set: a file that is missing or not a MaxMind database stops
    /// the start with its name.
    pub fn open(config: &Config) -> anyhow::Result<Geo> {
        let reader = match &config.geoip_database {
            Some(path) => Some(
                maxminddb::Reader::open_readfile(path)
                    .with_context(|| format!("geoip_database {}", path.display()))?,
            ),
            None => None,
        };
        Ok(Geo { reader })
    }

    /// The visitor's country: the trusted proxy's header first, else the database's answer
    /// for the client's address.
    pub fn country(
        &self,
        config: &Config,
        peer: SocketAddr,
        client: IpAddr,
        headers: &axum::http::HeaderMap,
    ) -> Option<Country> {
        if let Some(name) = &config.country_header
            && config.trusted_proxies.iter().any(|n| n.contains(peer.ip()))
            && let Some(c) = headers
                .get(name.as_str())
                .and_then(|v| v.to_str().ok())
                .and_then(Country::parse)
        {
            return Some(c);
        }
        self.lookup(client)
    }

    /// The database's country for an address.
    fn lookup(&self, ip: IpAddr) -> Option<Country> {
        let found = self.reader.as_ref()?.lookup(ip).ok()?;
        let record: maxminddb::geoip2::Country = found.decode().ok()??;
        record.country.iso_code.and_then(Country::parse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A MaxMind DB (format 2) with one network, written by hand from the specification: an
    /// IPv4 search tree of 24-bit records, the data section, the metadata.
    fn database(network: [u8; 1], iso: &str) -> Vec<u8> {
        let string = |s: &str| {
            let mut v = vec![0x40 | s.len() as u8];
            v.extend_from_slice(s.as_bytes());
            v
        };
        let nodes = 8u32;
        let record = |v: u32| v.to_be_bytes()[1..].to_vec();
        let mut out = Vec::new();
        // One node per bit of the /8: the path's bit leads on, the other side holds nothing.
        for i in 0..8 {
            let bit = (network[0] >> (7 - i)) & 1;
            let on = if i == 7 { nodes + 16 } else { i + 1 };
            let (left, right) = if bit == 0 { (on, nodes) } else { (nodes, on) };
            out.extend(record(left));
            out.extend(record(right));
        }
        out.extend([0u8; 16]);
        // {"country": {"iso_code": iso}}
        out.push(0xE1);
        out.extend(string("country"));
        out.push(0xE1);
        out.extend(string("iso_code"));
        out.extend(string(iso));
        out.extend(b"\xAB\xCD\xEFMaxMind.com");
        out.push(0xE9);
        for (key, value) in [
            ("node_count", vec![0xC1, nodes as u8]),
            ("record_size", vec![0xA1, 24]),
            ("ip_version", vec![0xA1, 4]),
            ("database_type", string("GeoLite2-Country")),
            ("languages", [vec![0x01, 0x04], string("en")].concat()),
            ("binary_format_major_version", vec![0xA1, 2]),
            ("binary_format_minor_version", vec![0xA0]),
            ("build_epoch", vec![0x04, 0x02, 0x65, 0x00, 0x00, 0x00]),
            (
                "description",
                [vec![0xE1], string("en"), string("test")].concat(),
            ),
        ] {
            out.extend(string(key));
            out.extend(value);
        }
        out
    }

    /// An address in the database's network has its country; one outside it has none.
    #[test]
    fn the_database_gives_a_country() {
        let geo = Geo {
            reader: Some(maxminddb::Reader::from_source(database([10], "NO")).unwrap()),
        };
        assert_eq!(
            geo.lookup("10.1.2.3".parse().unwrap()),
            Country::parse("NO")
        );
        assert_eq!(geo.lookup("11.1.2.3".parse().unwrap()), None);
        assert_eq!(
            Geo { reader: None }.lookup("10.1.2.3".parse().unwrap()),
            None
        );
    }
}
