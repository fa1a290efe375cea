use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use serde::ser::{SerializeMap, Serializer};

/// What an address was found to be, best first (DESIGN §4 precedence).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IdentityKind {
    /// A Kubernetes pod.
    Pod,
    /// A Kubernetes service (cluster IP).
    Service,
    /// A cluster node (host network).
    Node,
    /// A name a client resolved through DNS.
    Dns,
    /// A name taken from the traffic itself (TLS SNI, HTTP Host) when no DNS answer was seen.
    Hint,
    /// A user-named address range.
    Zone,
    /// Nothing but the address.
    #[default]
    Ip,
}

/// Who an address is, at one point in time.
///
/// Empty strings mean "not known"; the KFL contract makes absent values their type's default.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Identity {
    /// The most specific source that named this address.
    pub kind: IdentityKind,
    /// Best name: pod > service > dns > zone.
    pub name: String,
    /// Kubernetes namespace.
    pub namespace: String,
    /// DNS name the address was resolved under.
    pub dns: String,
    /// User zone.
    pub zone: String,
    /// Pod name.
    pub pod: String,
    /// Service name.
    pub service: String,
    /// Owning workload kind (`deployment`, `statefulset`, …).
    pub workload_kind: String,
    /// Owning workload name.
    pub workload_name: String,
    /// Cluster node.
    pub node: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// `""` when resolved, else why not (`unresolved`, `stale`).
    pub resolution_status: &'static str,
}

/// An endpoint's identity compared and hashed by address: the same `Arc` is the same
/// identity (one identity index hands out one `Arc` per identity). A cheap key for caches
/// keyed by endpoint; holding the `Arc` keeps its address from being reused.
#[derive(Debug, Clone)]
pub struct IdentityPtr(pub Option<Arc<Identity>>);

impl PartialEq for IdentityPtr {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        }
    }
}

impl Eq for IdentityPtr {}

impl std::hash::Hash for IdentityPtr {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.0
            .as_ref()
            .map_or(0, |a| Arc::as_ptr(a) as usize)
            .hash(h);
    }
}

/// One side of an exchange: address, port and (when known) identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Address.
    pub ip: IpAddr,
    /// Port (0 when the transport has none).
    pub port: u16,
    /// Identity at the time of the exchange; `None` is a bare address.
    pub identity: Option<Arc<Identity>>,
}

impl Endpoint {
    /// An endpoint with no identity yet.
    pub fn new(ip: IpAddr, port: u16) -> Self {
        Endpoint {
            ip,
            port,
            identity: None,
        }
    }

    /// The identity, or an empty one.
    pub fn identity(&self) -> &Identity {
        static EMPTY: std::sync::OnceLock<Identity> = std::sync::OnceLock::new();
        match &self.identity {
            Some(i) => i,
            None => EMPTY.get_or_init(|| Identity {
                resolution_status: "unresolved",
                ..Identity::default()
            }),
        }
    }
}

struct Pair<'a>(&'a str, &'a str);

impl serde::Serialize for Pair<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("name", self.0)?;
        m.serialize_entry("namespace", self.1)?;
        m.end()
    }
}

impl serde::Serialize for Endpoint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let id = self.identity();
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("ip", &self.ip)?;
        m.serialize_entry("port", &self.port)?;
        m.serialize_entry("name", &id.name)?;
        m.serialize_entry("namespace", &id.namespace)?;
        m.serialize_entry("dns", &id.dns)?;
        if !id.pod.is_empty() {
            m.serialize_entry("pod", &Pair(&id.pod, &id.namespace))?;
        }
        if !id.service.is_empty() {
            m.serialize_entry("service", &Pair(&id.service, &id.namespace))?;
        }
        if !id.workload_name.is_empty() {
            let mut w = BTreeMap::new();
            w.insert("kind", id.workload_kind.as_str());
            w.insert("name", id.workload_name.as_str());
            m.serialize_entry("workload", &w)?;
        }
        if !id.node.is_empty() {
            m.serialize_entry("node", &id.node)?;
        }
        if !id.zone.is_empty() {
            m.serialize_entry("zone", &id.zone)?;
        }
        if !id.labels.is_empty() {
            m.serialize_entry("labels", &id.labels)?;
        }
        m.end()
    }
}
