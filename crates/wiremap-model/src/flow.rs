use std::net::IpAddr;

/// The 5-tuple of a conversation as first seen: `a` is the side that sent the first packet
/// (the initiator when a SYN was seen).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    /// Transport protocol.
    pub transport: crate::Transport,
    /// Address of side A.
    pub a_ip: IpAddr,
    /// Port of side A.
    pub a_port: u16,
    /// Address of side B.
    pub b_ip: IpAddr,
    /// Port of side B.
    pub b_port: u16,
}

impl FlowKey {
    /// The same flow seen from the other side.
    pub fn reversed(&self) -> FlowKey {
        FlowKey {
            transport: self.transport,
            a_ip: self.b_ip,
            a_port: self.b_port,
            b_ip: self.a_ip,
            b_port: self.a_port,
        }
    }

    /// A direction-independent form, for hashing both directions to one flow.
    pub fn canonical(&self) -> FlowKey {
        if (self.a_ip, self.a_port) <= (self.b_ip, self.b_port) {
            *self
        } else {
            self.reversed()
        }
    }
}

/// Which way bytes travel within a flow, relative to its [`FlowKey`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From side A to side B.
    AtoB,
    /// From side B to side A.
    BtoA,
}

impl Direction {
    /// The opposite direction.
    pub fn flip(self) -> Direction {
        match self {
            Direction::AtoB => Direction::BtoA,
            Direction::BtoA => Direction::AtoB,
        }
    }

    /// 0 for A→B, 1 for B→A: an index into per-direction arrays.
    pub fn index(self) -> usize {
        match self {
            Direction::AtoB => 0,
            Direction::BtoA => 1,
        }
    }
}
