//! Following a node's interfaces as they come and go (`--all-interfaces`, `-i any`): a pod
//! started after the capture gets a new veth, and a deleted pod takes its veth away.
//!
//! Why netlink and sysfs together: a link-group netlink socket wakes the capture the moment a
//! link appears, changes or goes, without parsing its messages; `/sys/class/net` then says
//! what exists, by name and index (an interface deleted and made again under the same name
//! has a new index, and is a new interface).
#![allow(unsafe_code)]

use std::time::{Duration, Instant};

const AF_NETLINK: libc::c_int = 16;
const NETLINK_ROUTE: libc::c_int = 0;
const RTMGRP_LINK: u32 = 1;
/// Rescan this often even without a netlink message (a socket that could not be opened, or
/// a message lost to a full socket buffer).
pub(crate) const RESCAN_EVERY: Duration = Duration::from_secs(1);

#[repr(C)]
struct SockaddrNl {
    nl_family: u16,
    nl_pad: u16,
    nl_pid: u32,
    nl_groups: u32,
}

/// A netlink socket subscribed to link changes.
#[derive(Debug)]
pub(crate) struct Watch {
    fd: libc::c_int,
}

impl Drop for Watch {
    fn drop(&mut self) {
        // SAFETY: closing the socket we opened.
        unsafe { libc::close(self.fd) };
    }
}

impl Watch {
    /// Subscribes to link changes; `None` where netlink is not available (rescans on a timer
    /// then still find new interfaces).
    pub(crate) fn open() -> Option<Watch> {
        // SAFETY: plain system call.
        let fd = unsafe {
            libc::socket(
                AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return None;
        }
        let addr = SockaddrNl {
            nl_family: AF_NETLINK as u16,
            nl_pad: 0,
            nl_pid: 0,
            nl_groups: RTMGRP_LINK,
        };
        // SAFETY: `addr` is a valid sockaddr_nl of the size given.
        let rc = unsafe {
            libc::bind(
                fd,
                (&addr as *const SockaddrNl).cast(),
                std::mem::size_of::<SockaddrNl>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            // SAFETY: closing the socket we opened.
            unsafe { libc::close(fd) };
            return None;
        }
        Some(Watch { fd })
    }

    pub(crate) fn fd(&self) -> libc::c_int {
        self.fd
    }

    /// Reads every pending message; true if there was any (something changed).
    pub(crate) fn drain(&self) -> bool {
        let mut buf = [0u8; 8192];
        let mut any = false;
        loop {
            // SAFETY: reading into a buffer of the size given.
            let n = unsafe { libc::recv(self.fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n <= 0 {
                // EAGAIN: drained. ENOBUFS (messages lost): a rescan sees the truth anyway.
                return any
                    || n < 0
                        && std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOBUFS);
            }
            any = true;
        }
    }
}

/// Every interface but loopback, with its index, by name.
pub(crate) fn interfaces() -> Vec<(String, u32)> {
    let Ok(dir) = std::fs::read_dir("/sys/class/net") else {
        return Vec::new();
    };
    let mut out: Vec<(String, u32)> = dir
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let base = e.path();
            // ARPHRD_LOOPBACK: the API's own traffic and nothing between endpoints.
            let kind = std::fs::read_to_string(base.join("type")).ok()?;
            if kind.trim() == "772" {
                return None;
            }
            let index = std::fs::read_to_string(base.join("ifindex")).ok()?;
            Some((name, index.trim().parse().ok()?))
        })
        .collect();
    out.sort();
    out
}

/// When to look at the interfaces again.
#[derive(Debug)]
pub(crate) struct Schedule {
    last: Instant,
    /// Something changed (a netlink message, a ring's error) since the last scan.
    pub(crate) due: bool,
}

impl Schedule {
    pub(crate) fn new() -> Schedule {
        Schedule {
            last: Instant::now(),
            due: false,
        }
    }

    /// Whether a scan is due now; if so, the clock restarts.
    pub(crate) fn take(&mut self) -> bool {
        if self.due || self.last.elapsed() >= RESCAN_EVERY {
            self.due = false;
            self.last = Instant::now();
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_interfaces_but_loopback() {
        let all = interfaces();
        assert!(all.iter().all(|(n, i)| n != "lo" && *i > 0), "{all:?}");
    }

    #[test]
    fn a_scan_is_due_when_asked_or_after_a_second() {
        let mut s = Schedule::new();
        assert!(!s.take());
        s.due = true;
        assert!(s.take());
        assert!(!s.take());
    }
}
