//! Flows no probe recognised: one `tcp` or `udp` entry each.

use wiremap_model::{ConnInfo, Detail, Direction, Protocol, Transport};
use wiremap_reassembly::CloseReason;

use crate::Cx;

/// Ports below this are taken as the server side when no SYN told who connected.
const SERVICE_PORT_LIMIT: u16 = 10_000;

#[derive(Debug, Default)]
pub(crate) struct Opaque {
    /// The flow already has entries (an upgraded connection): add none.
    pub silent: bool,
}

/// Which side is the client of a flow with no recognised protocol.
pub(crate) fn client_side(cx: &Cx<'_>) -> Direction {
    let k = &cx.info.key;
    if cx.info.initiator_known {
        return Direction::AtoB;
    }
    let a_service = k.a_port < SERVICE_PORT_LIMIT;
    let b_service = k.b_port < SERVICE_PORT_LIMIT;
    match (a_service, b_service) {
        (true, false) => Direction::BtoA,
        (false, true) => Direction::AtoB,
        _ if k.a_port < k.b_port => Direction::BtoA,
        _ => Direction::AtoB,
    }
}

impl Opaque {
    pub(crate) fn close(&mut self, cx: &mut Cx<'_>, reason: CloseReason) {
        if self.silent {
            return;
        }
        let c = client_side(cx);
        let (ci, si) = (c.index(), c.flip().index());
        let info = cx.info;
        let tcp = info.key.transport == Transport::Tcp;
        let answered = info.packets[si] > 0;
        let error_type = if tcp && info.reset && info.bytes[ci] + info.bytes[si] == 0 {
            "refused"
        } else if tcp && info.reset {
            "reset"
        } else if tcp && !answered && info.initiator_known {
            "unanswered"
        } else {
            ""
        };
        let state = match reason {
            CloseReason::End | CloseReason::Evicted => "open",
            _ => "closed",
        };
        let detail = Detail::Conn(Box::new(ConnInfo {
            client_packets: info.packets[ci],
            server_packets: info.packets[si],
            state,
            error_type,
        }));
        let protocol = if tcp { Protocol::Tcp } else { Protocol::Udp };
        // Latency of an opaque connection: first packet to first reply (the handshake RTT).
        let response_ts = if c == Direction::AtoB {
            info.first_reply_ts
        } else {
            answered.then_some(info.first_ts)
        };
        let (req, resp) = (info.bytes[ci], info.bytes[si]);
        cx.emit(
            c,
            protocol,
            info.first_ts,
            response_ts,
            req,
            resp,
            0,
            !error_type.is_empty(),
            detail,
        );
    }
}
